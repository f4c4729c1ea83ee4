"""mmpose's CSPNeXt (UDP heatmaps) and RTMPose (CSPNeXt + RTMCC head, SimCC) in aptrack.

Sizes are checked against mmpose's published tables and the models mmpose 1.3.2
builds from its configs; behaviour on small models; mmpose's keypoints on seeded
weights are ``tests/test_mmpose_parity.py``'s (fixtures ``cspnext_*``, ``rtmpose_*``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aptrack.core import hub
from aptrack.core.instances import Instances
from aptrack.models import build_network, count_flops, count_parameters, get_preset
from aptrack.models.cspnext import CSPNeXtBackbone, CSPNeXtHeatmap
from aptrack.models.mmpose_keys import mmpose_state_dict
from aptrack.models.rtmpose import GatedAttentionUnit, RTMPose, ScaleNorm
from aptrack.pose.codecs import build_codec
from aptrack.pose.config import PoseConfig
from aptrack.core.boxes import xyxy_to_center_scale_float32
from aptrack.pose.estimator import TopDownPoseEstimator
from aptrack.pose.mmpose_codecs import SimCCLabel, crop_to_frame

from conftest import randomized

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mmpose"
RTMPOSE_FACTORS = {"t": (0.167, 0.375), "s": (0.33, 0.5), "m": (0.67, 0.75), "l": (1.0, 1.0)}
"""deepen / widen factors of mmpose's RTMPose configs."""
SMALL = {"deepen_factor": 0.33, "widen_factor": 0.125}
SMALL_HEAD = {"hidden_dims": 32, "attention_dims": 16}


def meta_rtmpose(size: str, input_size=(256, 256), num_keypoints: int = 17) -> RTMPose:
    deepen, widen = RTMPOSE_FACTORS[size]
    with torch.device("meta"):
        return RTMPose(num_keypoints, deepen, widen, input_size=input_size)


# --- sizes ------------------------------------------------------------------------------------

def test_rtmpose_m_ap10k_has_mmposes_parameters_and_multiply_adds():
    model = meta_rtmpose("m")
    params = count_parameters(model)
    assert params == 13_624_475          # mmpose 1.3.2's model built from rtmpose-m_8xb64-210e_ap10k-256x256.py
    assert params == pytest.approx(13.7e6, rel=0.01)
    gmacs = count_flops(model, (256, 256))["gmacs"]
    # projects/rtmpose/README.md, animal table: 2.57 GFLOPs (mmcv's counter, which also
    # counts batch norms and activations, so it sits a little above the matrix products alone)
    assert gmacs == pytest.approx(2.57, rel=0.01) and gmacs < 2.57


@pytest.mark.parametrize("size, params_m, gflops", [("t", 3.34, 0.36), ("s", 5.47, 0.68), ("m", 13.59, 1.93),
                                                    ("l", 27.66, 4.16)])
def test_rtmpose_factors_reproduce_mmposes_body_table_at_256x192(size, params_m, gflops):
    model = meta_rtmpose(size, input_size=(192, 256))
    assert count_parameters(model) / 1e6 == pytest.approx(params_m, abs=0.005)
    gmacs = count_flops(model, (192, 256))["gmacs"]
    assert gmacs == pytest.approx(gflops, rel=0.02) and gmacs < gflops


@pytest.mark.parametrize("size", sorted(RTMPOSE_FACTORS))
def test_square_input_adds_only_head_weights_for_16_more_cells_and_128_more_bins(size):
    hidden = 256
    extra = (8 * 8 - 8 * 6) * hidden + (512 - 384) * hidden   # mlp.1 reads 64 cells; cls_x has 512 bins
    assert count_parameters(meta_rtmpose(size)) - count_parameters(meta_rtmpose(size, (192, 256))) == extra


def test_cspnext_m_udp_ap10k_has_the_parameters_of_mmposes_model():
    # cspnext_udp_ap10k.yml publishes no size; the count of mmpose 1.3.2's model built from
    # cspnext-m_udp_8xb64-210e_ap10k-256x256.py (backbone + HeatmapHead with three 256-channel deconvs)
    with torch.device("meta"):
        model = build_network(get_preset("cspnext-m-udp-ap10k"))
        backbone = CSPNeXtBackbone(0.67, 0.75)
    assert count_parameters(model) == 17_528_217
    head = 768 * 256 * 16 + 2 * 256 * 256 * 16 + 3 * 2 * 256 + 256 * 17 + 17
    assert count_parameters(model) - count_parameters(backbone) == head
    # no published FLOPs either: torch's count of the matrix products, as a regression guard
    assert count_flops(model, (256, 256))["gmacs"] == pytest.approx(4.06, abs=0.01)


# --- module tree ------------------------------------------------------------------------------

@pytest.mark.parametrize("size, blocks", [("t", [1, 1, 1, 1]), ("s", [1, 2, 2, 1]), ("m", [2, 4, 4, 2]),
                                          ("l", [3, 6, 6, 3])])
def test_deepen_factor_rounds_mmposes_block_counts(size, blocks):
    net = meta_rtmpose(size).backbone
    assert [len(getattr(net, f"stage{s}")[-1].blocks) for s in (1, 2, 3, 4)] == blocks


def test_widen_factor_sets_mmposes_channels_and_only_stage_4_has_pyramid_pooling_without_identity():
    net = meta_rtmpose("m").backbone
    state = net.state_dict()
    assert [state[f"stem.{i}.conv.weight"].shape[0] for i in range(3)] == [24, 24, 48]
    assert [state[f"stage{s}.0.conv.weight"].shape[0] for s in (1, 2, 3, 4)] == [96, 192, 384, 768]
    assert state["stage4.1.conv2.conv.weight"].shape == (768, 4 * 384, 1, 1)    # x and 3 max pools, 768 / 2 each
    assert state["stage2.1.blocks.0.conv2.depthwise_conv.conv.weight"].shape == (96, 1, 5, 5)
    assert [len(getattr(net, f"stage{s}")) for s in (1, 2, 3, 4)] == [2, 2, 2, 3]
    assert [getattr(net, f"stage{s}")[-1].blocks[0].add_identity for s in (1, 2, 3, 4)] == [True] * 3 + [False]
    assert net.stem[0].bn.eps == 1e-5   # the configs' SyncBN, not CSPNeXt's default 1e-3


def test_rtmpose_m_keys_are_mmposes():
    keys = list(meta_rtmpose("m").state_dict())
    conv_module = 6                                            # conv.weight + five bn entries
    block = 3 * conv_module                                    # conv1, depthwise, pointwise
    csp = 3 * conv_module + 2                                  # main, short, final + attention.fc
    stages = sum(conv_module + csp + n * block for n in (2, 4, 4)) + conv_module + 2 * conv_module + csp + 2 * block
    assert len(keys) == 3 * conv_module + stages + 12 == 362   # mmpose's state dict has 362 entries too
    for key in ["backbone.stem.0.conv.weight", "backbone.stem.2.bn.num_batches_tracked",
                "backbone.stage1.0.bn.running_var", "backbone.stage1.1.short_conv.conv.weight",
                "backbone.stage3.1.blocks.3.conv2.pointwise_conv.bn.bias",
                "backbone.stage4.1.conv1.conv.weight", "backbone.stage4.2.attention.fc.bias",
                "backbone.stage4.2.final_conv.bn.weight",
                "head.final_layer.weight", "head.final_layer.bias", "head.mlp.0.g", "head.mlp.1.weight",
                "head.gau.uv.weight", "head.gau.o.weight", "head.gau.gamma", "head.gau.beta", "head.gau.ln.g",
                "head.gau.res_scale.scale", "head.cls_x.weight", "head.cls_y.weight"]:
        assert key in keys, key
    state = meta_rtmpose("m").state_dict()
    assert state["head.final_layer.weight"].shape == (17, 768, 7, 7)
    assert state["head.mlp.1.weight"].shape == (256, 64)
    assert state["head.gau.uv.weight"].shape == (2 * 512 + 128, 256)
    assert state["head.cls_x.weight"].shape == state["head.cls_y.weight"].shape == (512, 256)
    assert not any(k.startswith(("head.gau.w", "backbone.stage4.1.poolings")) for k in keys)


def test_cspnext_heatmap_keys_add_mmposes_heatmap_head():
    with torch.device("meta"):
        keys = list(build_network(get_preset("cspnext-m-udp-ap10k")).state_dict())
    assert len(keys) == 350 + 3 * 6 + 2 == 370
    assert keys[-2:] == ["head.final_layer.weight", "head.final_layer.bias"]
    assert "head.deconv_layers.6.weight" in keys and "head.deconv_layers.7.running_mean" in keys


# --- behaviour --------------------------------------------------------------------------------

def test_rtmpose_gives_two_bins_per_pixel_along_each_axis():
    model = RTMPose(5, **SMALL, **SMALL_HEAD, input_size=(192, 256)).eval()
    with torch.no_grad():
        x, y = model(torch.randn(2, 3, 256, 192))
    assert x.shape == (2, 5, 384) and y.shape == (2, 5, 512)


def test_cspnext_heatmaps_are_a_quarter_of_the_input():
    model = CSPNeXtHeatmap(4, **SMALL, deconv_channels=(8, 8, 8)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 96))
    assert out.shape == (1, 4, 32, 24)


def test_scale_norm_divides_by_the_root_mean_square_floored_at_eps():
    norm = ScaleNorm(4)
    with torch.no_grad():
        norm.g.fill_(2.0)
    x = torch.tensor([[3.0, 0.0, 4.0, 0.0], [1e-7, 0.0, 0.0, 0.0]])
    out = norm(x)
    torch.testing.assert_close(out[0], x[0] / 2.5 * 2)           # rms of (3, 0, 4, 0) is 5 / 2
    torch.testing.assert_close(out[1], x[1] / 1e-5 * 2)          # below eps: divided by eps


def test_gated_attention_unit_is_squared_relu_attention_gated_by_u_plus_scaled_residual():
    torch.manual_seed(0)
    unit = randomized(GatedAttentionUnit(num_tokens=3, dims=4, attention_dims=2, expansion_factor=2))
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        out = unit(x)
        normed = x / (x.norm(dim=-1, keepdim=True) / 2).clamp(min=1e-5) * unit.ln.g
        uv = torch.nn.functional.silu(normed @ unit.uv.weight.T)
        u, v, base = uv[..., :8], uv[..., 8:16], uv[..., 16:]
        q = base * unit.gamma[0] + unit.beta[0]
        k = base * unit.gamma[1] + unit.beta[1]
        attention = torch.relu(q @ k.transpose(1, 2) / np.sqrt(2)) ** 2
        expected = x * unit.res_scale.scale + (u * (attention @ v)) @ unit.o.weight.T
    torch.testing.assert_close(out, expected)


def test_tokens_attend_across_keypoints():
    """The unit mixes keypoints: changing one keypoint's features changes another's output."""
    torch.manual_seed(0)
    unit = GatedAttentionUnit(num_tokens=3, dims=4, attention_dims=2).eval()
    with torch.no_grad():
        unit.beta.fill_(1.0)                 # q and k near 1: every pair of tokens attends
    x = torch.randn(1, 3, 4)
    changed = x.clone()
    changed[0, 2] += 1.0
    with torch.no_grad():
        a, b = unit(x), unit(changed)
    assert not torch.allclose(a[0, 0], b[0, 0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", ["rtmpose", "cspnext"])
def test_mmpose_1x_checkpoint_loads_strictly_and_reproduces_outputs(family):
    if family == "rtmpose":
        source, fresh = (RTMPose(3, **SMALL, **SMALL_HEAD, input_size=(64, 64)) for _ in range(2))
    else:
        source, fresh = (CSPNeXtHeatmap(3, **SMALL, deconv_channels=(8, 8, 8)) for _ in range(2))
    source = randomized(source)
    checkpoint = {"state_dict": {"data_preprocessor.mean": torch.zeros(3, 1, 1),
                                 **{f"module.{k}": v for k, v in source.state_dict().items()}}}
    fresh.load_state_dict(mmpose_state_dict(checkpoint), strict=True)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for a, b in zip(*(out if isinstance(out, tuple) else (out,) for out in (fresh.eval()(images), source(images)))):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_initialisation_follows_mmpose():
    model = RTMPose(17, **SMALL)
    assert model.head.final_layer.weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert model.head.cls_x.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert model.head.gau.uv.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert torch.all(model.head.final_layer.bias == 0) and torch.all(model.head.gau.res_scale.scale == 1)
    assert 0 <= model.head.gau.gamma.min() and model.head.gau.beta.max() < 1
    assert torch.all(model.backbone.stage1[1].attention.fc.bias == 0)


@pytest.mark.parametrize("kwargs", [{"widen_factor": 0.0}, {"deepen_factor": -1.0}, {"widen_factor": 0.01}])
def test_factors_that_leave_no_layer_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        CSPNeXtBackbone(**{"deepen_factor": 0.33, "widen_factor": 0.5, **kwargs})


def test_rtmpose_input_below_the_stride_raises_value_error():
    with pytest.raises(ValueError, match="stride"):
        RTMPose(17, **SMALL, input_size=(16, 16))


# --- presets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, file", [
    ("rtmpose-m-ap10k", "rtmpose-m_simcc-ap10k_pt-aic-coco_210e-256x256-7a041aa1_20230206.pth"),
    ("cspnext-m-udp-ap10k", "cspnext-m_udp-ap10k_pt-in1k_210e-256x256-1f2d947a_20230123.pth")])
def test_published_presets_name_mmposes_weights_with_their_sha256_prefix(name, file):
    entry = hub.load_registry()[get_preset(name).weights]
    assert entry.file == file and entry.sha256 == file.split("-")[-1].split("_")[0]
    assert entry.url == "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/" + file


def test_rtmpose_m_preset_is_mmposes_test_recipe():
    preset = get_preset("rtmpose-m-ap10k")
    assert preset.family == "rtmpose" and preset.layout.name == "ap10k" and preset.input_size == (256, 256)
    assert preset.codec == {"type": "simcc", "sigma": [5.66, 5.66], "simcc_split_ratio": 2.0,
                            "normalize": False, "use_dark": False}
    assert preset.warp == "msra"            # the config's TopdownAffine has no use_udp
    assert preset.flip_test and not preset.flip_shift
    assert preset.mean == (123.675, 116.28, 103.53) and preset.std == (58.395, 57.12, 57.375)
    assert preset.color == "rgb" and preset.reported["AP"] == pytest.approx(0.722)
    assert (preset.architecture["deepen_factor"], preset.architecture["widen_factor"]) == RTMPOSE_FACTORS["m"]


def test_cspnext_preset_is_mmposes_udp_test_recipe():
    preset = get_preset("cspnext-m-udp-ap10k")
    assert preset.family == "cspnext" and preset.warp == "udp"
    assert preset.codec == {"type": "udp-heatmap", "heatmap_size": [64, 64], "sigma": 2.0}
    assert preset.flip_test and not preset.flip_shift      # shift_heatmap=False
    assert preset.reported["AP"] == pytest.approx(0.703) and preset.color == "rgb"


@pytest.mark.parametrize("size", ["t", "s", "m", "l"])
def test_rtmpose_presets_build_the_head_for_their_own_input_and_codec(size):
    preset = get_preset(f"rtmpose-{size}-ap10k")
    assert tuple(preset.architecture["input_size"]) == preset.input_size
    assert preset.architecture["simcc_split_ratio"] == preset.codec["simcc_split_ratio"]
    assert (preset.architecture["deepen_factor"], preset.architecture["widen_factor"]) == RTMPOSE_FACTORS[size]
    codec = build_codec(preset.input_size, preset.codec)
    with torch.device("meta"):
        model = build_network(preset)
    assert isinstance(codec, SimCCLabel) and codec.label_size == (model.head.cls_x.out_features,
                                                                  model.head.cls_y.out_features) == (512, 512)
    if size != "m":  # mmpose publishes AP-10K weights for RTMPose-m only
        assert preset.weights is None and not preset.reported


def test_models_command_lists_the_new_presets(capsys):
    from aptrack.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ["cspnext-m-udp-ap10k", "rtmpose-t-ap10k", "rtmpose-s-ap10k", "rtmpose-m-ap10k", "rtmpose-l-ap10k"]:
        assert name in out
    assert "13.62 M" in out and "17.53 M" in out


# --- the estimator with SimCC vectors and UDP crops ------------------------------------------

class FixedVectors(torch.nn.Module):
    """Ignores the image content except for its orientation: SimCC vectors that differ for
    a crop and its mirror image (the mirror has a bright right edge), for 3 keypoints."""

    def __init__(self, bins: int = 128):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.x = torch.rand(2, 3, bins, generator=gen)
        self.y = torch.rand(2, 3, bins, generator=gen)

    def forward(self, images):
        mirrored = (images[..., -1] > images[..., 0]).flatten(1).any(1).long()
        return self.x[mirrored], self.y[mirrored]


def simcc_preset(**changes):
    base = get_preset("rtmpose-m-ap10k")
    layout = base.layout.__class__.from_dict({**base.layout.to_dict(), "name": "three",
                                              "keypoints": ["a", "left", "right"], "flip_pairs": [[1, 2]],
                                              "skeleton": [], "sigmas": [0.1, 0.1, 0.1], "upper_body": [0, 1, 2]})
    return base.with_(layout=layout, input_size=(64, 64), weights=None,
                      codec={**base.codec, "sigma": [2.0, 2.0]}, **changes)


def test_simcc_flip_test_reverses_x_bins_swaps_left_and_right_and_averages():
    model = FixedVectors()
    est = TopDownPoseEstimator(model, simcc_preset(), PoseConfig(flip_test=True))
    crop = np.zeros((1, 64, 64, 3), np.uint8)
    crop[:, :, 0] = 255                                              # bright left edge: not mirrored
    x, y = est.outputs(crop)
    swap = [0, 2, 1]
    expected_x = (model.x[0] + model.x[1][swap].flip(-1)) * 0.5
    expected_y = (model.y[0] + model.y[1][swap]) * 0.5              # y vectors are not reversed
    np.testing.assert_array_equal(x[0], expected_x.numpy())
    np.testing.assert_array_equal(y[0], expected_y.numpy())
    with pytest.raises(ValueError, match="SimCC"):
        est.heatmaps(crop)


class OneBin(torch.nn.Module):
    """Every keypoint's x vector peaks at bin ``bx`` (value 3) and y at ``by`` (value 2)."""

    def __init__(self, bx: int, by: int, bins: int = 128):
        super().__init__()
        self.bx, self.by, self.bins = bx, by, bins

    def forward(self, images):
        x = torch.zeros(images.shape[0], 3, self.bins)
        y = torch.zeros(images.shape[0], 3, self.bins)
        x[..., self.bx], y[..., self.by] = 3.0, 2.0
        return x, y


def test_simcc_keypoints_are_bin_over_split_ratio_mapped_back_as_mmpose_does():
    est = TopDownPoseEstimator(OneBin(bx=40, by=90), simcc_preset(), PoseConfig(flip_test=False))
    boxes = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 30.0, 30.0]])
    out = est(np.zeros((120, 80, 3), np.uint8), Instances(boxes, [0.9, 0.8]))
    centers, scales = est.regions(boxes)
    for i in range(2):
        expected = crop_to_frame(np.array([[20.0, 45.0]] * 3), centers[i], scales[i], (64, 64))
        np.testing.assert_allclose(out.keypoints[i], expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out.keypoint_scores, 2.0)          # min of the two maxima


def test_udp_regions_are_float32_in_mmposes_operation_order():
    boxes = np.array([[0.1, 0.2, 100.7, 50.3], [150.5, 60.25, 300.0, 235.0]], np.float32)
    centers, scales = xyxy_to_center_scale_float32(boxes, 1.0, 1.25)
    assert centers.dtype == scales.dtype == np.float32
    wh = (boxes[:, 2:] - boxes[:, :2]) * np.float32(1.25)           # float32 all along, as mmpose
    np.testing.assert_array_equal(scales[:, 0], wh.max(axis=1))
    np.testing.assert_array_equal(centers, (boxes[:, 2:] + boxes[:, :2]) * np.float32(0.5))
    est = TopDownPoseEstimator(OneBin(0, 0), get_preset("cspnext-m-udp-ap10k"), PoseConfig())
    assert est.regions(boxes)[1].dtype == np.float32
    msra = TopDownPoseEstimator(OneBin(0, 0), get_preset("res50-ap10k"), PoseConfig())
    assert msra.regions(boxes)[1].dtype == np.float64                # the MSRA presets are unchanged


# --- fixtures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["cspnext", "rtmpose"])
def test_parity_fixtures_exist_for_both_checkpoint_versions_and_stay_under_a_megabyte(family):
    description = json.loads((FIXTURES / f"{family}_fixture.json").read_text())
    files = [FIXTURES / description["checkpoints"][v] for v in ("1.x", "0.x")] + [FIXTURES / description["reference"]]
    assert sum(f.stat().st_size for f in files) < 1_000_000
    assert description["aptrack_preset"] == {"cspnext": "cspnext-m-udp-ap10k", "rtmpose": "rtmpose-m-ap10k"}[family]
    assert description["flip_test"] and not description["shift_heatmap"]
    architecture = description["aptrack_architecture"]
    assert description["overrides"]["model.backbone.widen_factor"] == architecture["widen_factor"] < 0.75

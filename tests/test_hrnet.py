"""Top-down HRNet laid out as mmpose 1.x's ``HRNet`` backbone + ``HeatmapHead`` (no deconvolutions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aptrack.models.hrnet import HRModule, HRNetPose
from aptrack.models.mmpose_keys import mmpose_state_dict
from aptrack.models.registry import count_flops, count_parameters

from conftest import randomized

BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def meta_model(width: int, num_keypoints: int = 17) -> HRNetPose:
    """A full-size model without storage: enough for shapes, keys, parameter and FLOP counts."""
    with torch.device("meta"):
        return HRNetPose(num_keypoints, width=width)


@pytest.fixture(scope="module")
def w32_keys() -> list[str]:
    return list(meta_model(32).state_dict())


# --- size -------------------------------------------------------------------------------------

@pytest.mark.parametrize("width, paper_millions, exact", [(32, 28.5, 28_536_113), (48, 63.6, 63_595_745)])
def test_parameter_count_matches_the_hrnet_paper(width, paper_millions, exact):
    params = count_parameters(meta_model(width))
    assert params == pytest.approx(paper_millions * 1e6, rel=0.01)
    # mmpose's docs/en/inference_speed_summary.md lists 28.54 M and 63.6 M
    assert params == exact


@pytest.mark.parametrize("width, mmpose_gflops", [(32, 7.7), (48, 15.77)])
def test_multiply_adds_match_mmpose_published_figures_and_scale_with_area(width, mmpose_gflops):
    # mmpose's docs/en/inference_speed_summary.md (mmcv's counter, which also counts BN, ReLU
    # and upsampling, so sits slightly above the convolutions alone). The HRNet paper's 7.1 and
    # 14.6 GFLOPs are about 7.5% below either count.
    model = meta_model(width)
    gmacs = count_flops(model, (192, 256))["gmacs"]
    assert gmacs == pytest.approx(mmpose_gflops, rel=0.03)
    assert gmacs < mmpose_gflops
    assert count_flops(model, (256, 256))["gmacs"] == pytest.approx(gmacs * 4 / 3, rel=1e-3)


# --- behaviour --------------------------------------------------------------------------------

@pytest.mark.parametrize("h, w", [(256, 192), (64, 32)])
def test_heatmaps_are_a_quarter_of_the_input(h, w):
    model = HRNetPose(5, width=8).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, h, w))
    assert out.shape == (2, 5, h // 4, w // 4)


def test_full_width_model_is_shaped_like_the_config():
    state = meta_model(32, num_keypoints=17).state_dict()
    assert state["backbone.conv1.weight"].shape == (64, 3, 3, 3)
    assert state["backbone.layer1.3.conv3.weight"].shape == (256, 64, 1, 1)
    assert state["backbone.transition1.0.0.weight"].shape == (32, 256, 3, 3)
    assert state["backbone.transition1.1.0.0.weight"].shape == (64, 256, 3, 3)
    assert state["backbone.transition3.3.0.0.weight"].shape == (256, 128, 3, 3)
    assert state["backbone.stage4.0.branches.3.3.conv2.weight"].shape == (256, 256, 3, 3)
    assert state["backbone.stage3.0.fuse_layers.0.2.0.weight"].shape == (32, 128, 1, 1)
    assert state["backbone.stage3.0.fuse_layers.2.0.0.0.weight"].shape == (32, 32, 3, 3)
    assert state["backbone.stage3.0.fuse_layers.2.0.1.0.weight"].shape == (128, 32, 3, 3)
    assert state["head.final_layer.weight"].shape == (17, 32, 1, 1)


def test_stages_have_mmpose_module_counts_and_only_the_last_module_fuses_into_one_branch():
    net = meta_model(32).backbone
    assert [len(net.layer1)] + [len(getattr(net, f"stage{s}")) for s in (2, 3, 4)] == [4, 1, 4, 3]
    outputs = {s: [len(m.fuse_layers) for m in getattr(net, f"stage{s}")] for s in (2, 3, 4)}
    assert outputs == {2: [2], 3: [3, 3, 3, 3], 4: [4, 4, 1]}
    assert all(len(branch) == 4 for s in (2, 3, 4) for m in getattr(net, f"stage{s}") for branch in m.branches)


def test_fusion_adds_nearest_upsampled_lower_branches():
    torch.manual_seed(0)
    module = HRModule([2, 4], num_blocks=1).eval()
    with torch.no_grad():
        for branch in module.branches:     # zero second BN: each block becomes ReLU(x) = x for x >= 0
            branch[0].bn2.weight.zero_()
        up = module.fuse_layers[0][1]      # 1x1 conv 4 -> 2 taking channels 0 and 1, identity BN
        up[0].weight.zero_()
        up[0].weight[0, 0] = 1
        up[0].weight[1, 1] = 1
    x0, x1 = torch.rand(1, 2, 8, 6), torch.rand(1, 4, 4, 3)
    with torch.no_grad():
        out = module([x0, x1])
    assert len(out) == 2
    expected = x0 + F.interpolate(x1[:, :2], scale_factor=2, mode="nearest")
    torch.testing.assert_close(out[0], expected)
    assert not torch.allclose(out[0], x0 + F.interpolate(x1[:, :2], scale_factor=2, mode="bilinear"))
    assert out[1].shape == (1, 4, 4, 3)


def test_downward_fusion_is_a_chain_of_stride_2_steps_with_relu_between_but_not_after():
    module = HRModule([2, 4, 8], num_blocks=1)
    chain = module.fuse_layers[2][0]
    assert [len(step) for step in chain] == [3, 2]          # conv, BN, ReLU ; conv, BN
    assert [step[0].stride for step in chain] == [(2, 2), (2, 2)]
    assert [tuple(step[0].weight.shape) for step in chain] == [(2, 2, 3, 3), (8, 2, 3, 3)]
    assert module.fuse_layers[1][1] is None


def test_mmpose_1x_checkpoint_loads_strictly_and_reproduces_outputs():
    source = randomized(HRNetPose(3, width=4))
    checkpoint = {"state_dict": {"data_preprocessor.mean": torch.zeros(3, 1, 1),
                                 **{f"module.{k}": v for k, v in source.state_dict().items()}},
                  "meta": {"mmengine_version": "0.10.3"}}
    fresh = HRNetPose(3, width=4)
    fresh.load_state_dict(mmpose_state_dict(checkpoint), strict=True)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(images), source(images), rtol=0, atol=0)


def test_initialisation_follows_mmpose():
    model = HRNetPose(17, width=8)
    conv = model.backbone.stage3[0].branches[1][0].conv1.weight
    assert conv.std().item() == pytest.approx(0.001, rel=0.2)
    assert torch.all(model.backbone.stage3[0].branches[1][0].bn2.weight == 1)   # no zero_init_residual
    assert torch.all(model.backbone.bn1.bias == 0)
    assert torch.all(model.head.final_layer.bias == 0)


@pytest.mark.parametrize("width", [0, -32])
def test_non_positive_width_raises_value_error(width):
    with pytest.raises(ValueError):
        HRNetPose(17, width=width)


def test_architecture_keywords_build_the_model():
    model = meta_model(48)
    assert HRNetPose(num_keypoints=17, **{"width": 48}).backbone.width == model.backbone.width == 48


# --- keys -------------------------------------------------------------------------------------

def test_key_names_are_mmpose_1x_names(w32_keys):
    stem = ["backbone.conv1.weight"] + [f"backbone.bn1.{p}" for p in BN] + ["backbone.conv2.weight"]
    assert w32_keys[:7] == stem
    assert w32_keys[-2:] == ["head.final_layer.weight", "head.final_layer.bias"]
    for key in ["backbone.bn2.running_var",
                "backbone.layer1.0.downsample.0.weight", "backbone.layer1.0.downsample.1.num_batches_tracked",
                "backbone.layer1.3.bn3.bias",
                "backbone.transition1.0.0.weight", "backbone.transition1.0.1.running_mean",
                "backbone.transition1.1.0.0.weight", "backbone.transition1.1.0.1.weight",
                "backbone.transition2.2.0.0.weight", "backbone.transition3.3.0.1.bias",
                "backbone.stage2.0.branches.0.0.conv1.weight", "backbone.stage2.0.branches.1.3.bn2.running_var",
                "backbone.stage2.0.fuse_layers.0.1.0.weight", "backbone.stage2.0.fuse_layers.0.1.1.weight",
                "backbone.stage2.0.fuse_layers.1.0.0.0.weight", "backbone.stage2.0.fuse_layers.1.0.0.1.bias",
                "backbone.stage3.3.fuse_layers.2.0.1.0.weight", "backbone.stage3.3.fuse_layers.2.0.0.1.weight",
                "backbone.stage4.1.fuse_layers.3.0.2.0.weight", "backbone.stage4.2.fuse_layers.0.3.1.bias",
                "backbone.stage4.2.branches.3.3.conv2.weight"]:
        assert key in w32_keys, key
    prefixes = ["backbone.transition1.1.1", "backbone.transition2.0.", "backbone.transition2.1.",
                "backbone.transition3.2.", "backbone.stage3.0.fuse_layers.1.1.",
                "backbone.stage4.2.fuse_layers.1.",
                "backbone.layer1.1.downsample", "backbone.stage2.0.branches.0.0.downsample",
                "head.deconv_layers", "head.conv_layers", "backbone.fuse"]
    for prefix in prefixes:
        assert not any(k.startswith(prefix) for k in w32_keys), prefix


def test_w32_key_count_is_what_mmpose_structure_gives(w32_keys):
    conv_bn = 1 + len(BN)                      # a bias-free conv and a batch norm: 6 keys
    stem = 2 * conv_bn
    layer1 = 4 * 3 * conv_bn + conv_bn         # four bottlenecks (3 conv+BN) + one shortcut projection
    branch = 4 * 2 * conv_bn                   # four basic blocks (2 conv+BN), no projection

    def module(branches: int, outputs: int) -> int:
        fuse = 0
        for i in range(outputs):
            for j in range(branches):
                fuse += conv_bn if j > i else (i - j) * conv_bn   # one 1x1 up, or i-j stride-2 steps
        return branches * branch + fuse

    transitions = 2 * conv_bn + conv_bn + conv_bn   # 256->W and ->2W ; new branch 3 ; new branch 4
    stage2 = module(2, 2)
    stage3 = 4 * module(3, 3)
    stage4 = 2 * module(4, 4) + module(4, 1)
    head = 2
    assert (stage2, stage3, stage4) == (108, 744, 786)
    assert len(w32_keys) == stem + layer1 + transitions + stage2 + stage3 + stage4 + head == 1754
    assert len(meta_model(48).state_dict()) == 1754          # the width changes shapes, not keys

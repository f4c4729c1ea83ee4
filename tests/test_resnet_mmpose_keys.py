"""ResNet SimpleBaseline laid out as mmpose's, and mmpose checkpoint key mapping."""

from __future__ import annotations

import pytest
import torch

from aptrack.core.errors import WeightsError
from aptrack.models.mmpose_keys import is_mmpose_checkpoint, mmpose_state_dict, simplebaseline_architecture
from aptrack.models.registry import count_flops, count_parameters
from aptrack.models.resnet import ResNetSimpleBaseline

from conftest import randomized


@pytest.fixture(scope="module")
def small_model():
    return randomized(ResNetSimpleBaseline(5, depth=18, deconv_channels=(32, 16, 8)))


def mmpose_0x(state: dict) -> dict:
    """``state`` saved the way mmpose 0.x saves a TopDown model."""
    return {"state_dict": {k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k: v
                           for k, v in state.items()},
            "meta": {"mmpose_version": "0.29.0", "epoch": 210}}


def mmpose_1x(state: dict, data_parallel: bool = False) -> dict:
    """``state`` saved the way mmpose 1.x saves a TopdownPoseEstimator (optionally DataParallel-wrapped)."""
    prefix = "module." if data_parallel else ""
    tensors = {f"{prefix}data_preprocessor.mean": torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)}
    tensors.update({prefix + k: v for k, v in state.items()})
    return {"state_dict": tensors, "meta": {"mmengine_version": "0.10.3", "epoch": 210}}


# --- the network ------------------------------------------------------------------------------

def test_resnet50_parameter_count_matches_the_hrnet_paper_table():
    model = ResNetSimpleBaseline(17, depth=50)
    params = count_parameters(model)
    assert params == pytest.approx(34.0e6, rel=0.02)
    # independent implementations (gluon-cv / imgclsmob SimplePose ResNet-50b) count exactly this
    assert params == 33_999_697


def test_resnet50_multiply_adds_are_backbone_plus_deconvolutions_and_scale_with_area():
    model = ResNetSimpleBaseline(17, depth=50)
    gmacs = count_flops(model, (192, 256))["gmacs"]
    # backbone: torchvision's ResNet-50 is 4.09 GMACs at 224x224, of which the classifier is
    # 2048 x 1000; its convolutions scale with the pixel count.
    backbone = (4.089e9 - 2048 * 1000) * (256 * 192) / (224 * 224)
    # head: a stride-2 transposed conv costs in_h * in_w * c_in * c_out * k * k multiply-adds
    head = (8 * 6 * 2048 * 256 * 16 + 16 * 12 * 256 * 256 * 16 + 32 * 24 * 256 * 256 * 16
            + 64 * 48 * 256 * 17)
    assert gmacs == pytest.approx((backbone + head) / 1e9, rel=0.02)
    assert gmacs == pytest.approx(5.43, abs=0.05)
    assert count_flops(model, (256, 256))["gmacs"] == pytest.approx(gmacs * 4 / 3, rel=0.01)


@pytest.mark.parametrize("depth, blocks, params", [(18, (2, 2, 2, 2), 15_376_721), (34, (3, 4, 6, 3), 25_484_881),
                                                    (101, (3, 4, 23, 3), 52_991_825)])
def test_each_depth_has_mmpose_block_counts_and_the_published_parameter_count(depth, blocks, params):
    model = ResNetSimpleBaseline(17, depth=depth)
    assert tuple(len(getattr(model.backbone, f"layer{i}")) for i in range(1, 5)) == blocks
    assert count_parameters(model) == params


@pytest.mark.parametrize("h, w", [(64, 32), (256, 192)])
def test_heatmaps_are_a_quarter_of_an_input_whose_sides_are_multiples_of_32(small_model, h, w):
    with torch.no_grad():
        out = small_model(torch.randn(2, 3, h, w))
    assert out.shape == (2, 5, h // 4, w // 4)


def test_sides_not_a_multiple_of_32_round_up_at_stride_32_as_in_mmpose(small_model):
    # 48 -> 24 -> 12 -> 12 -> 6 -> 3 -> 2 through the stem, pool and stages; 2 x 8 = 16
    with torch.no_grad():
        assert small_model(torch.randn(1, 3, 64, 48)).shape == (1, 5, 16, 16)


@pytest.mark.parametrize("kernel", [2, 3, 4])
def test_every_deconv_kernel_doubles_the_size_three_times(kernel):
    model = ResNetSimpleBaseline(3, depth=18, deconv_channels=(8, 8, 8), deconv_kernel=kernel).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 32)).shape == (1, 3, 16, 8)


def test_state_dict_keys_are_mmpose_1x_names():
    keys = list(ResNetSimpleBaseline(17, depth=50).state_dict())
    assert keys[:2] == ["backbone.conv1.weight", "backbone.bn1.weight"]
    for key in ["backbone.layer1.0.conv1.weight", "backbone.layer1.0.bn3.running_var",
                "backbone.layer1.0.downsample.0.weight", "backbone.layer1.0.downsample.1.num_batches_tracked",
                "backbone.layer3.5.conv3.weight", "backbone.layer4.2.bn3.bias"]:
        assert key in keys
    assert "backbone.layer1.1.downsample.0.weight" not in keys
    assert "backbone.fc.weight" not in keys
    head = [k for k in keys if k.startswith("head.")]
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    expected = []
    for deconv in (0, 3, 6):   # [deconv, BN, ReLU] x 3: the ReLUs (2, 5, 8) hold no tensors
        expected += [f"head.deconv_layers.{deconv}.weight"] + [f"head.deconv_layers.{deconv + 1}.{p}" for p in bn]
    assert head == expected + ["head.final_layer.weight", "head.final_layer.bias"]


def test_resnet18_layer1_has_no_shortcut_projection_but_later_stages_do():
    keys = ResNetSimpleBaseline(17, depth=18).state_dict()
    assert not any(k.startswith("backbone.layer1.0.downsample") for k in keys)
    assert keys["backbone.layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    # stride 2 sits on the first 3x3 conv of a basic block, on the 3x3 conv of a bottleneck
    net = ResNetSimpleBaseline(17, depth=50).backbone
    assert net.layer2[0].conv1.stride == (1, 1) and net.layer2[0].conv2.stride == (2, 2)
    assert ResNetSimpleBaseline(17, depth=18).backbone.layer2[0].conv1.stride == (2, 2)


def test_initialisation_follows_mmpose():
    model = ResNetSimpleBaseline(17, depth=50)
    assert torch.all(model.backbone.layer1[0].bn3.weight == 0)      # zero_init_residual
    assert torch.all(model.backbone.layer1[0].bn1.weight == 1)
    assert model.head.final_layer.weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert torch.all(model.head.final_layer.bias == 0)


@pytest.mark.parametrize("kwargs", [{"depth": 42}, {"deconv_kernel": 5}])
def test_bad_architecture_raises_value_error(kwargs):
    with pytest.raises(ValueError):
        ResNetSimpleBaseline(17, **kwargs)


# --- checkpoint keys --------------------------------------------------------------------------

@pytest.mark.parametrize("wrap", [mmpose_0x, mmpose_1x, lambda s: mmpose_1x(s, data_parallel=True),
                                  lambda s: mmpose_0x(s)["state_dict"]],
                         ids=["0.x", "1.x", "1.x-module-prefix", "bare-0.x"])
def test_mmpose_checkpoints_map_back_to_the_same_tensors_and_outputs(small_model, wrap):
    original = small_model.state_dict()
    mapped = mmpose_state_dict(wrap(original))
    assert list(mapped) == list(original)
    assert all(torch.equal(mapped[k], original[k]) for k in original)

    fresh = ResNetSimpleBaseline(5, depth=18, deconv_channels=(32, 16, 8))
    fresh.load_state_dict(mapped, strict=True)
    images = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(images), small_model(images))


def test_architecture_is_read_back_from_the_tensors(small_model):
    mapped = mmpose_state_dict(mmpose_0x(small_model.state_dict()))
    assert simplebaseline_architecture(mapped) == {"num_keypoints": 5, "depth": 18,
                                                   "deconv_channels": [32, 16, 8], "deconv_kernel": 4}
    big = ResNetSimpleBaseline(17, depth=50, deconv_kernel=3).state_dict()
    assert simplebaseline_architecture(big)["depth"] == 50
    assert simplebaseline_architecture(big)["deconv_kernel"] == 3
    with pytest.raises(WeightsError):
        simplebaseline_architecture({"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)})


def test_mmpose_checkpoints_are_told_apart_from_aptrack_ones(small_model):
    state = small_model.state_dict()
    assert is_mmpose_checkpoint(mmpose_0x(state))
    assert is_mmpose_checkpoint(mmpose_1x(state, data_parallel=True))
    assert is_mmpose_checkpoint(dict(state))
    assert not is_mmpose_checkpoint({"format": "aptrack-pose", "version": 2, "state_dict": state})
    assert not is_mmpose_checkpoint({"features.0.weight": torch.zeros(1)})
    assert not is_mmpose_checkpoint([1, 2])
    with pytest.raises(WeightsError, match="aptrack pose checkpoint"):
        mmpose_state_dict({"format": "aptrack-pose", "version": 2, "state_dict": state})


@pytest.mark.parametrize("checkpoint", [{"state_dict": {"backbone.conv1.weight": torch.zeros(1)}},
                                        {"state_dict": "nope"}, {}, {"state_dict": {"fc.weight": torch.zeros(1)}}])
def test_checkpoints_without_network_weights_raise_weights_error(checkpoint):
    with pytest.raises(WeightsError):
        mmpose_state_dict(checkpoint)

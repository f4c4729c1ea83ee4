"""Top-down HRFormer laid out as mmpose 1.x's ``HRFormer`` backbone + ``HeatmapHead`` (no deconvolutions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from aptrack.models import build_network, get_preset
from aptrack.models.hrformer import (HRFormerBlock, HRFormerModule, HRFormerPose, LocalWindowAttention,
                                     WindowAttention, relative_position_index)
from aptrack.models.mmpose_keys import mmpose_state_dict
from aptrack.models.registry import count_flops, count_parameters

SMALL = {}
BASE = {"width": 78, "num_heads": (2, 4, 8, 16)}
PAPER_SIZE = (192, 256)  # w, h of the published figures (COCO)
NO_PADDING_SIZE = (224, 224)  # every branch (56, 28, 14, 7) a multiple of the 7-token window


def meta_model(num_keypoints: int = 17, **architecture) -> HRFormerPose:
    """A model without storage: enough for shapes, keys, parameter and FLOP counts."""
    with torch.device("meta"):
        return HRFormerPose(num_keypoints, **architecture)


def tiny(num_keypoints: int = 5, **changes) -> HRFormerPose:
    """A small HRFormer for behaviour tests: width 8, one module per stage, one block per branch."""
    architecture = {"width": 8, "num_modules": (1, 1, 1), "num_blocks": (1, 1, 1), "stage1_blocks": 1} | changes
    return HRFormerPose(num_keypoints, **architecture).eval()


def randomized(model, seed: int = 0):
    """Every float tensor random (batch-norm variances positive); the position index kept."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.3)
    return model.eval()


def op_counts(model, size) -> dict[str, float]:
    """Multiply-accumulates (G) per aten op of one forward on a (w, h) crop."""
    w, h = size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, h, w, device=next(model.parameters()).device))
    return {str(op).split(".")[-1]: n / 2e9 for op, n in counter.get_flop_counts()["Global"].items()}


# --- size -------------------------------------------------------------------------------------

@pytest.mark.parametrize("architecture, paper_millions, exact", [(SMALL, 7.8, 7_746_779), (BASE, 43.2, 43_211_777)])
def test_parameter_count_matches_the_hrformer_paper(architecture, paper_millions, exact):
    # HRFormer paper (pose, COCO 256x192): HRFormer-S 7.8 M, HRFormer-B 43.2 M parameters
    params = count_parameters(meta_model(**architecture))
    assert params == pytest.approx(paper_millions * 1e6, rel=0.01)
    assert params == exact


@pytest.mark.parametrize("architecture, paper_gflops", [(SMALL, 2.8), (BASE, 12.2)])
def test_published_gflops_are_convolutions_and_linear_layers_without_window_padding(architecture, paper_gflops):
    # The paper's 2.8 / 12.2 GFLOPs (256x192) are reproduced, 1.7% under, by the multiply-adds of
    # the convolutions and linear layers on unpadded maps (with the attention products as well
    # they would be 6.7% / 3% over). At 224x224 no branch needs padding and both scale with the
    # area, so their count there, scaled to 256x192, is that figure.
    model = meta_model(**architecture)
    unpadded = op_counts(model, NO_PADDING_SIZE)
    area = (PAPER_SIZE[0] * PAPER_SIZE[1]) / (NO_PADDING_SIZE[0] * NO_PADDING_SIZE[1])
    assert (unpadded["convolution"] + unpadded["addmm"]) * area == pytest.approx(paper_gflops, rel=0.025)
    paper = op_counts(model, PAPER_SIZE)
    assert paper["convolution"] == pytest.approx(unpadded["convolution"] * area, rel=1e-9)
    # at 256x192 every branch is padded (64x48 -> 70x49, ..., 8x6 -> 14x7): more linear work
    assert paper["addmm"] > 1.1 * unpadded["addmm"] * area


@pytest.mark.parametrize("architecture, gmacs_256x192, gmacs_256x256", [(SMALL, 3.245, 4.455), (BASE, 13.907, 19.230)])
def test_count_flops_counts_attention_products_and_padded_windows(architecture, gmacs_256x192, gmacs_256x256):
    # torch's FlopCounterMode counts the attention matmuls (bmm) and the padded tokens,
    # which the published figures leave out: aptrack's count sits 14-16% above them
    model = meta_model(**architecture)
    counts = op_counts(model, PAPER_SIZE)
    assert counts["bmm"] > 0.05 * sum(counts.values())
    assert sum(counts.values()) == pytest.approx(gmacs_256x192, abs=1e-3)
    assert count_flops(model, PAPER_SIZE)["gmacs"] == pytest.approx(sum(counts.values()), rel=1e-9)
    # 256x256 pads differently from 256x192 (64x64 -> 70x70): not quite 4/3 of it
    square = count_flops(model, (256, 256))["gmacs"]
    assert square == pytest.approx(gmacs_256x256, abs=1e-3)
    assert square > gmacs_256x192 * 4 / 3 * 1.01


# --- attention --------------------------------------------------------------------------------

def test_relative_position_index_is_one_row_per_offset():
    index = relative_position_index(3)
    assert index.shape == (9, 9) and index.dtype == torch.int64
    assert torch.all(index.diagonal() == 12)               # offset (0, 0): the middle of a 5x5 table
    assert index[0, 8] == 0 and index[8, 0] == 24          # (-2, -2) and (+2, +2): the corners
    assert index[0, 1] == 11 and index[1, 0] == 13         # one column left / right
    assert index[0, 3] == 7 and index[3, 0] == 17          # one row up / down
    assert index[1, 2] == index[4, 5] == index[6, 7]       # the same offset, the same row
    assert set(relative_position_index(7).unique().tolist()) == set(range(13 * 13))


def test_window_attention_adds_the_bias_of_each_offset():
    torch.manual_seed(0)
    attn = WindowAttention(4, 2, 2).eval()
    tokens = torch.randn(3, 4, 4)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
        q, k, v = attn.qkv(tokens).reshape(3, 4, 3, 2, 2).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / 2 ** 0.5
        bias = attn.relative_position_bias_table[relative_position_index(2)].permute(2, 0, 1)
        expected = attn.proj(((scores + bias).softmax(-1) @ v).transpose(1, 2).reshape(3, 4, 4))
        torch.testing.assert_close(attn(tokens), expected)
        attn.relative_position_bias_table.zero_()
        no_bias = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 4, 4))
        torch.testing.assert_close(attn(tokens), no_bias)
    assert not torch.allclose(expected, no_bias)


def test_tokens_attend_only_within_their_window():
    torch.manual_seed(0)
    local = LocalWindowAttention(4, 1, 3).eval()
    x = torch.randn(1, 6 * 6, 4)
    changed = x.clone()
    changed[0, 0] += 5.0                                   # top-left window (rows 0-2, columns 0-2)
    with torch.no_grad():
        a, b = local(x, 6, 6).view(6, 6, 4), local(changed, 6, 6).view(6, 6, 4)
    assert not torch.allclose(a[:3, :3], b[:3, :3])
    torch.testing.assert_close(a[:3, 3:], b[:3, 3:])
    torch.testing.assert_close(a[3:], b[3:])


def test_windows_pad_the_map_evenly_with_zeros_that_take_part_in_attention():
    torch.manual_seed(0)
    local = LocalWindowAttention(4, 2, 3).eval()
    x = torch.randn(2, 4 * 5, 4)                            # 4 x 5 map, window 3: pad 2 rows, 1 column
    padded = F.pad(x.view(2, 4, 5, 4), (0, 0, 0, 1, 1, 1))  # rows: 1 above, 1 below; column: 1 after
    windows = padded.view(2, 2, 3, 2, 3, 4).permute(0, 1, 3, 2, 4, 5).reshape(-1, 9, 4)
    with torch.no_grad():
        out = local.attn(windows).view(2, 2, 2, 3, 3, 4).permute(0, 1, 3, 2, 4, 5).reshape(2, 6, 6, 4)
        expected = out[:, 1:5, 0:5].reshape(2, 20, 4)
        torch.testing.assert_close(local(x, 4, 5), expected)
        at_end = F.pad(x.view(2, 4, 5, 4), (0, 0, 0, 1, 0, 2))
        windows = at_end.view(2, 2, 3, 2, 3, 4).permute(0, 1, 3, 2, 4, 5).reshape(-1, 9, 4)
        out = local.attn(windows).view(2, 2, 2, 3, 3, 4).permute(0, 1, 3, 2, 4, 5).reshape(2, 6, 6, 4)
    assert not torch.allclose(local(x, 4, 5), out[:, :4, :5].reshape(2, 20, 4))


# --- blocks and modules -----------------------------------------------------------------------

def test_block_is_a_residual_whose_branches_can_vanish():
    torch.manual_seed(0)
    block = randomized(HRFormerBlock(8, 2, window=3))
    x = torch.randn(2, 8, 5, 4)
    with torch.no_grad():
        assert not torch.allclose(block(x), x)
        block.attn.attn.proj.weight.zero_()
        block.attn.attn.proj.bias.zero_()
        block.ffn.norm3.weight.zero_()                      # BN -> 0, then GELU(0) = 0
        block.ffn.norm3.bias.zero_()
        torch.testing.assert_close(block(x), x)


def test_ffn_is_pointwise_depthwise_pointwise_with_exact_gelu():
    block = HRFormerBlock(8, 2, mlp_ratio=4)
    ffn = block.ffn
    assert (ffn.fc1.in_channels, ffn.fc1.out_channels, ffn.fc1.kernel_size) == (8, 32, (1, 1))
    assert ffn.dw3x3.groups == 32 and ffn.dw3x3.kernel_size == (3, 3) and ffn.dw3x3.padding == (1, 1)
    assert (ffn.fc2.in_channels, ffn.fc2.out_channels) == (32, 8)
    assert all(conv.bias is not None for conv in (ffn.fc1, ffn.dw3x3, ffn.fc2))
    assert all(act.approximate == "none" for act in (ffn.act1, ffn.act2, ffn.act3))
    assert block.norm1.eps == block.norm2.eps == 1e-6
    assert isinstance(ffn.norm1, torch.nn.BatchNorm2d) and ffn.norm3.num_features == 8


def test_fusion_adds_bilinearly_upsampled_lower_branches():
    torch.manual_seed(0)
    module = randomized(HRFormerModule([2, 4], [1, 2], num_blocks=1, window=2))
    with torch.no_grad():
        for branch in module.branches:                      # blocks -> identity (see the test above)
            for p in (branch[0].attn.attn.proj.weight, branch[0].attn.attn.proj.bias,
                      branch[0].ffn.norm3.weight, branch[0].ffn.norm3.bias):
                p.zero_()
        conv, bn, _ = module.fuse_layers[0][1]              # 1x1 conv 4 -> 2 taking channels 0, 1; BN identity
        conv.weight.zero_()
        conv.weight[0, 0] = conv.weight[1, 1] = 1
        bn.running_mean.zero_()
        bn.running_var.fill_(1 - bn.eps)
        bn.weight.fill_(1)
        bn.bias.zero_()
    x0, x1 = torch.rand(1, 2, 8, 6), torch.rand(1, 4, 4, 3)
    with torch.no_grad():
        out = module([x0, x1])
    expected = x0 + F.interpolate(x1[:, :2], scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[0], expected)
    assert not torch.allclose(out[0], x0 + F.interpolate(x1[:, :2], scale_factor=2, mode="nearest"))
    assert out[1].shape == (1, 4, 4, 3)


def test_downward_fusion_is_a_chain_of_depthwise_separable_stride_2_steps():
    module = HRFormerModule([2, 4, 8], [1, 2, 4], num_blocks=1)
    chain = module.fuse_layers[2][0]
    assert [len(step) for step in chain] == [5, 4]          # dw conv, BN, 1x1, BN, ReLU ; dw conv, BN, 1x1, BN
    assert isinstance(chain[0][4], torch.nn.ReLU)
    for step, c_out in zip(chain, (2, 8)):
        dw, pw = step[0], step[2]
        assert (dw.groups, dw.stride, dw.kernel_size, dw.bias) == (2, (2, 2), (3, 3), None)
        assert tuple(pw.weight.shape) == (c_out, 2, 1, 1) and pw.bias is None
    assert module.fuse_layers[1][1] is None


def test_stages_have_mmpose_module_counts_and_only_the_last_module_fuses_into_one_branch():
    net = meta_model().backbone
    assert len(net.layer1) == 2
    assert [len(getattr(net, f"stage{s}")) for s in (2, 3, 4)] == [1, 4, 2]
    outputs = {s: [len(m.fuse_layers) for m in getattr(net, f"stage{s}")] for s in (2, 3, 4)}
    assert outputs == {2: [2], 3: [3, 3, 3, 3], 4: [4, 1]}
    blocks = [branch for s in (2, 3, 4) for m in getattr(net, f"stage{s}") for branch in m.branches]
    assert all(len(branch) == 2 for branch in blocks)
    heads = [block.attn.attn.num_heads for block in net.stage4[0].branches[3]]
    assert heads == [8, 8] and net.stage4[0].branches[3][0].attn.window == 7


@pytest.mark.parametrize("h, w", [(256, 192), (64, 96)])
def test_heatmaps_are_a_quarter_of_the_input(h, w):
    model = tiny()
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert out.shape == (1, 5, h // 4, w // 4)


# --- keys and checkpoints ---------------------------------------------------------------------

def test_key_names_are_mmpose_1x_names():
    keys = list(meta_model().state_dict())
    assert keys[:2] == ["backbone.conv1.weight", "backbone.bn1.weight"]
    assert keys[-2:] == ["head.final_layer.weight", "head.final_layer.bias"]
    block = "backbone.stage3.2.branches.1.0."
    for key in ["backbone.layer1.0.downsample.0.weight", "backbone.layer1.1.conv3.weight",
                "backbone.transition1.0.0.weight", "backbone.transition1.1.0.0.weight",
                "backbone.transition3.3.0.1.running_var",
                block + "norm1.weight", block + "attn.attn.qkv.weight", block + "attn.attn.proj.bias",
                block + "attn.attn.relative_position_bias_table", block + "attn.attn.relative_position_index",
                block + "norm2.bias", block + "ffn.fc1.bias", block + "ffn.norm1.running_mean",
                block + "ffn.dw3x3.weight", block + "ffn.norm2.weight", block + "ffn.fc2.weight",
                block + "ffn.norm3.num_batches_tracked",
                "backbone.stage4.1.fuse_layers.0.3.0.weight", "backbone.stage4.0.fuse_layers.3.0.2.3.bias",
                "backbone.stage4.0.fuse_layers.3.0.1.2.weight"]:
        assert key in keys, key
    for prefix in ["backbone.layer1.2.", "backbone.stage4.1.fuse_layers.1.", "backbone.stage2.0.branches.0.2.",
                   "head.deconv_layers", "backbone.transition2.0.", "backbone.stage4.0.fuse_layers.1.1."]:
        assert not any(k.startswith(prefix) for k in keys), prefix


def test_shapes_follow_the_config():
    state = meta_model(**BASE).state_dict()
    block = "backbone.stage4.0.branches.3.1."
    assert state["backbone.transition1.0.0.weight"].shape == (78, 256, 3, 3)
    assert state["backbone.transition3.3.0.0.weight"].shape == (624, 312, 3, 3)
    assert state[block + "attn.attn.qkv.weight"].shape == (3 * 624, 624)
    assert state[block + "attn.attn.relative_position_bias_table"].shape == (13 * 13, 16)
    assert state[block + "attn.attn.relative_position_index"].shape == (49, 49)
    assert state[block + "ffn.fc1.weight"].shape == (4 * 624, 624, 1, 1)
    assert state[block + "ffn.dw3x3.weight"].shape == (4 * 624, 1, 3, 3)
    assert state["backbone.stage4.0.fuse_layers.3.0.2.0.weight"].shape == (78, 1, 3, 3)
    assert state["backbone.stage4.0.fuse_layers.3.0.2.2.weight"].shape == (624, 78, 1, 1)
    assert state["head.final_layer.weight"].shape == (17, 78, 1, 1)


def test_without_relative_position_bias_there_are_no_table_or_index_keys():
    # APTv2's AP-10K HRFormer configs set with_rpe=False
    with_rpe, without = meta_model().state_dict(), meta_model(with_rpe=False).state_dict()
    removed = set(with_rpe) - set(without)
    assert set(without) < set(with_rpe)
    assert {k.rsplit(".", 1)[1] for k in removed} == {"relative_position_bias_table", "relative_position_index"}
    assert len(removed) == 2 * (2 * 2 + 4 * 3 * 2 + 2 * 4 * 2)   # two per block: 44 blocks


def test_mmpose_1x_checkpoint_loads_strictly_and_reproduces_outputs():
    source = randomized(tiny(3))
    checkpoint = {"state_dict": {"data_preprocessor.mean": torch.zeros(3, 1, 1),
                                 **{f"module.{k}": v for k, v in source.state_dict().items()}},
                  "meta": {"mmengine_version": "0.10.3"}}
    fresh = tiny(3)
    fresh.load_state_dict(mmpose_state_dict(checkpoint), strict=True)
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(images), source(images), rtol=0, atol=0)


def test_initialisation_follows_mmpose():
    torch.manual_seed(0)
    model = tiny(17, width=32)
    block = model.backbone.stage3[0].branches[2][0]
    assert model.backbone.transition1[0][0].weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert torch.all(block.ffn.fc1.bias == 0) and torch.all(block.ffn.norm1.weight == 1)
    table = block.attn.attn.relative_position_bias_table
    assert table.std().item() == pytest.approx(0.02, rel=0.2) and table.abs().max() <= 2.0
    assert torch.all(block.norm1.weight == 1) and torch.all(model.head.final_layer.bias == 0)


@pytest.mark.parametrize("changes", [{"width": 0}, {"num_heads": (1, 2, 4, 5)}, {"num_heads": (1, 2, 4)},
                                     {"num_modules": (1, 0, 2)}, {"num_blocks": (2, 2)}, {"window_size": 0},
                                     {"stage1_blocks": 0}])
def test_inconsistent_architecture_raises_value_error(changes):
    with pytest.raises(ValueError):
        meta_model(**changes)


# --- presets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, architecture", [("hrformer-s-ap10k", SMALL), ("hrformer-b-ap10k", BASE)])
def test_presets_are_the_mmpose_configs_with_the_ap10k_recipe(name, architecture):
    preset = get_preset(name)
    assert preset.family == "hrformer" and preset.layout.num_keypoints == 17
    assert preset.input_size == (256, 256) and preset.warp == "msra" and preset.flip_test and preset.flip_shift
    assert preset.codec == {"type": "msra-heatmap", "heatmap_size": [64, 64], "sigma": 2.0}
    assert preset.weights is None and "AP" not in preset.reported
    with torch.device("meta"):
        model = build_network(preset)
    assert count_parameters(model) == count_parameters(meta_model(**architecture))
    assert count_parameters(model) / 1e6 == pytest.approx(preset.reported["params_m"], rel=0.01)

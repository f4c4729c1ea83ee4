"""ViTPose in aptrack: mmpose's module tree and sizes, the ViTPose repository's and ViTPose+ files, the presets.

The reference forward pass below is written from the ViTPose repository's
``mmpose/models/backbones/vit.py`` and ``vit_moe.py`` (its own key names, its
``x + pos_embed[:, 1:] + pos_embed[:, :1]``, the ViTPose+ expert concatenation)
and mmpose 0.x's deconvolution head, in plain torch functions, so that loading
those files is checked against what that code computes, not against aptrack's
own modules. mmpose 1.x parity is ``tests/test_mmpose_parity.py``'s vitpose fixture.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aptrack.core.errors import WeightsError
from aptrack.core.instances import Instances
from aptrack.models import build_network, count_flops, count_parameters, get_preset, load_checkpoint
from aptrack.models.vitpose import VITPOSE_ARCHS, ViTPose, resize_pos_embed
from aptrack.models.vitpose_keys import VITPOSE_PLUS_PARTS, vitpose_plus_split
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mmpose"
PRESETS = {"vitpose-s-ap10k": "small", "vitpose-b-ap10k": "base", "vitpose-l-ap10k": "large",
           "vitpose-h-ap10k": "huge"}
REPORTED_AP10K = {"small": 0.714, "base": 0.745, "large": 0.804, "huge": 0.824}
"""ViTPose+ AP on the AP-10K test set, ViTPose README's animal table."""

PUBLISHED_PARAMS_M = {"small": 24, "base": 86, "large": 307, "huge": 632}
"""ViTPose paper / mmpose README parameter counts, millions (ViTPose-B: 86 M backbone, 90 M with its head)."""
PUBLISHED_GFLOPS = {"base": 17.1, "large": 59.8, "huge": 122.9}
"""The ViTPose paper's GFLOPs at 256 x 192 (multiply-adds of the backbone)."""

PATCHES = 16 * 12  # 256 x 192 crops, 16 px patches, padding 2
K = 17
HEAD = 256
EPS = 1e-6

# a tiny ViTPose for the checkpoint tests: 64 x 48 crops -> 4 x 3 patches -> 16 x 12 heatmaps
TINY = {"embed_dims": 16, "num_layers": 2, "num_heads": 2, "feedforward_channels": 32, "img_size": [64, 48],
        "deconv_channels": [8, 8]}
TINY_GRID = (4, 3)
EXPERT_PART = 4  # ViTPose+ expert width of the tiny MoE: 16 = 12 shared + 4 expert channels
NUM_EXPERTS = 6


def tiny_preset(**architecture):
    preset = get_preset("vitpose-b-ap10k")
    return preset.with_(name="tiny-vitpose", architecture={**preset.architecture, **TINY, **architecture},
                        input_size=(48, 64), codec={"type": "msra-heatmap", "heatmap_size": [12, 16], "sigma": 2.0})


# ---------------------------------------------------------------- the presets


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_mmposes_vitpose_with_the_vitpose_repositorys_ap10k_recipe(name):
    preset = get_preset(name)
    size = PRESETS[name]
    arch = preset.architecture
    assert preset.family == "vitpose" and preset.layout.name == "ap10k" and preset.layout.num_keypoints == K
    assert {k: arch[k] for k in VITPOSE_ARCHS[size]} == VITPOSE_ARCHS[size]
    assert arch["img_size"] == [256, 192] and arch["patch_size"] == 16 and arch["patch_padding"] == 2
    assert arch["qkv_bias"] and arch["final_norm"] and arch["deconv_channels"] == [HEAD, HEAD]
    assert preset.input_size == (192, 256)
    assert preset.codec == {"type": "msra-heatmap", "heatmap_size": [48, 64], "sigma": 2.0}
    assert preset.warp == "msra" and preset.flip_test and preset.flip_shift and preset.color == "rgb"
    assert preset.weights is None  # mmpose publishes no AP-10K ViTPose
    assert preset.reported["AP"] == pytest.approx(REPORTED_AP10K[size])
    assert "ViTPose README" in preset.reported["source"] and "ViTPose+" in preset.description


def test_vitpose_small_is_vitposes_own_not_mmpretrains_small():
    assert VITPOSE_ARCHS["small"] == {"embed_dims": 384, "num_layers": 12, "num_heads": 12,
                                      "feedforward_channels": 1536}


# ---------------------------------------------------------------- sizes


def backbone_parameters(e, layers, f):
    per_layer = 2 * 2 * e + (3 * e * e + 3 * e) + (e * e + e) + (f * e + f) + (e * f + e)
    return (e * 3 * 16 * 16 + e) + PATCHES * e + layers * per_layer + 2 * e


def head_parameters(e):
    return e * HEAD * 16 + 2 * HEAD + HEAD * HEAD * 16 + 2 * HEAD + HEAD * K + K


def backbone_macs(e, layers, f):
    n = PATCHES
    return n * e * 3 * 16 * 16 + layers * (n * (3 * e * e + e * e + 2 * e * f) + 2 * n * n * e)


def head_macs(e):
    return 16 * 12 * e * HEAD * 16 + 32 * 24 * HEAD * HEAD * 16 + 64 * 48 * HEAD * K


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_and_flop_counts_are_vitposes(name):
    size = PRESETS[name]
    a = VITPOSE_ARCHS[size]
    e, layers, f = a["embed_dims"], a["num_layers"], a["feedforward_channels"]
    with torch.device("meta"):
        model = build_network(get_preset(name))
    assert count_parameters(model.backbone) == backbone_parameters(e, layers, f)
    assert count_parameters(model) == backbone_parameters(e, layers, f) + head_parameters(e)
    backbone = count_flops(model.backbone, (192, 256))["gmacs"] * 1e9
    assert backbone == pytest.approx(backbone_macs(e, layers, f), rel=1e-9)
    assert count_flops(model, (192, 256))["gmacs"] * 1e9 == pytest.approx(backbone + head_macs(e), rel=1e-9)
    # the published figures: ViTPose-B's 86 M are its backbone, 90 M with the head; S, L, H whole models
    published = PUBLISHED_PARAMS_M[size] * 1e6
    if size == "base":
        assert count_parameters(model.backbone) == pytest.approx(published, rel=0.005)
        assert count_parameters(model) == pytest.approx(90e6, rel=0.005)
    else:
        assert count_parameters(model) == pytest.approx(published, rel=0.015)
    if size in PUBLISHED_GFLOPS:
        assert backbone / 1e9 == pytest.approx(PUBLISHED_GFLOPS[size], rel=0.01)


def test_vitpose_b_has_mmposes_exact_parameter_count():
    """89,993,745: what mmpose 1.3.2 builds from td-hm_ViTPose-base_8xb64-210e_coco-256x192.py."""
    with torch.device("meta"):
        model = build_network(get_preset("vitpose-b-ap10k"))
    assert count_parameters(model) == 89_993_745


# ---------------------------------------------------------------- the network


def test_heatmaps_are_a_quarter_of_the_crop_and_follow_its_patch_grid():
    torch.manual_seed(0)
    model = ViTPose(K, **{**TINY, "img_size": (256, 192)}).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 256, 192)).shape == (2, K, 64, 48)
        assert model.backbone(torch.randn(1, 3, 256, 192)).shape == (1, 16, 16, 12)
        # another size: (224 + 4 - 16) // 16 + 1 = 14 rows of patches, the embedding resized to them
        assert model(torch.randn(1, 3, 224, 160)).shape == (1, K, 56, 40)


def test_attention_is_softmax_of_scaled_query_key_products():
    torch.manual_seed(0)
    model = ViTPose(K, **TINY).eval()
    attn = model.backbone.layers[0].attn
    x = torch.randn(2, 12, 16)
    q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).reshape(2, 12, 3, 2, 8).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-2, -1) / np.sqrt(8), dim=-1)
    expected = F.linear((weights @ v).transpose(1, 2).reshape(2, 12, 16), attn.proj.weight, attn.proj.bias)
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)


def test_position_embedding_resizes_bicubically_and_only_when_the_grid_changes():
    pos = torch.randn(1, 12, 5)
    assert resize_pos_embed(pos, (4, 3), (4, 3)) is pos
    constant = torch.ones(1, 12, 5) * torch.arange(5.0)
    torch.testing.assert_close(resize_pos_embed(constant, (4, 3), (8, 6)), torch.ones(1, 48, 5) * torch.arange(5.0))
    grid = torch.arange(12.0).reshape(1, 1, 4, 3)
    expected = F.interpolate(grid, size=(2, 3), mode="bicubic", align_corners=False).flatten()
    torch.testing.assert_close(resize_pos_embed(grid.reshape(1, 12, 1), (4, 3), (2, 3)).flatten(), expected)


def test_drop_path_and_dropout_are_the_identity_at_inference():
    torch.manual_seed(0)
    plain = ViTPose(K, **TINY).eval()
    regularised = ViTPose(K, **TINY, drop_rate=0.5, drop_path_rate=0.9).eval()
    regularised.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(regularised(x), plain(x), rtol=0, atol=0)
        regularised.train()
        assert not torch.allclose(regularised.backbone(x), plain.backbone(x))


# ---------------------------------------------------------------- ViTPose repository and ViTPose+ files


def repository_state(gen, e=16, layers=2, f=32, moe=False, keypoints=K):
    """A ViTPose-repository (or ViTPose+) state dict for the tiny architecture, seeded random values."""
    def rand(*shape, scale=1.0):
        return torch.randn(shape, generator=gen) * scale

    s = {"backbone.patch_embed.proj.weight": rand(e, 3, 16, 16, scale=1 / 28),
         "backbone.patch_embed.proj.bias": rand(e, scale=0.1),
         "backbone.pos_embed": rand(1, 1 + TINY_GRID[0] * TINY_GRID[1], e, scale=0.5)}
    for i in range(layers):
        p = f"backbone.blocks.{i}."
        s |= {p + "norm1.weight": 1 + rand(e, scale=0.2), p + "norm1.bias": rand(e, scale=0.1),
              p + "attn.qkv.weight": rand(3 * e, e, scale=e ** -0.5), p + "attn.qkv.bias": rand(3 * e, scale=0.1),
              p + "attn.proj.weight": rand(e, e, scale=e ** -0.5), p + "attn.proj.bias": rand(e, scale=0.1),
              p + "norm2.weight": 1 + rand(e, scale=0.2), p + "norm2.bias": rand(e, scale=0.1),
              p + "mlp.fc1.weight": rand(f, e, scale=e ** -0.5), p + "mlp.fc1.bias": rand(f, scale=0.1)}
        shared = e - EXPERT_PART if moe else e
        s |= {p + "mlp.fc2.weight": rand(shared, f, scale=f ** -0.5), p + "mlp.fc2.bias": rand(shared, scale=0.1)}
        if moe:
            for x in range(NUM_EXPERTS):
                s |= {p + f"mlp.experts.{x}.weight": rand(EXPERT_PART, f, scale=f ** -0.5),
                      p + f"mlp.experts.{x}.bias": rand(EXPERT_PART, scale=0.1)}
    s |= {"backbone.last_norm.weight": 1 + rand(e, scale=0.2), "backbone.last_norm.bias": rand(e, scale=0.1)}
    heads = ["keypoint_head."]
    if moe:
        heads += [f"associate_keypoint_heads.{h}." for h in range(NUM_EXPERTS - 1)]
    for h, prefix in enumerate(heads):
        out = keypoints + 3 if h else keypoints  # associate heads wider than their dataset: cut to it
        s |= {prefix + "deconv_layers.0.weight": rand(e, 8, 4, 4, scale=0.2),
              prefix + "deconv_layers.3.weight": rand(8, 8, 4, 4, scale=0.2),
              prefix + "final_layer.weight": rand(out, 8, 1, 1, scale=0.5),
              prefix + "final_layer.bias": rand(out, scale=0.1)}
        for j in (1, 4):
            s |= {prefix + f"deconv_layers.{j}.weight": 1 + rand(8, scale=0.2),
                  prefix + f"deconv_layers.{j}.bias": rand(8, scale=0.1),
                  prefix + f"deconv_layers.{j}.running_mean": rand(8, scale=0.1),
                  prefix + f"deconv_layers.{j}.running_var": 0.5 + torch.rand(8, generator=gen),
                  prefix + f"deconv_layers.{j}.num_batches_tracked": torch.tensor(7)}
    return s


def reference_forward(s, images, num_heads=2, expert=None, head="keypoint_head.", keypoints=K):
    """What the ViTPose repository computes (vit.py / vit_moe.py + mmpose 0.x's head), eval mode."""
    x = F.conv2d(images, s["backbone.patch_embed.proj.weight"], s["backbone.patch_embed.proj.bias"],
                 stride=16, padding=2)
    b, c, hp, wp = x.shape
    x = x.flatten(2).transpose(1, 2)
    pos = s["backbone.pos_embed"]
    x = x + pos[:, 1:] + pos[:, :1]
    i = 0
    while f"backbone.blocks.{i}.norm1.weight" in s:
        p = f"backbone.blocks.{i}."
        h = F.layer_norm(x, (c,), s[p + "norm1.weight"], s[p + "norm1.bias"], eps=EPS)
        qkv = F.linear(h, s[p + "attn.qkv.weight"], s[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, hp * wp, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = ((q * (c // num_heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = x + F.linear((attn @ v).transpose(1, 2).reshape(b, hp * wp, c), s[p + "attn.proj.weight"],
                         s[p + "attn.proj.bias"])
        h = F.layer_norm(x, (c,), s[p + "norm2.weight"], s[p + "norm2.bias"], eps=EPS)
        h = F.gelu(F.linear(h, s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"]))
        out = F.linear(h, s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"])
        if expert is not None:
            out = torch.cat([out, F.linear(h, s[p + f"mlp.experts.{expert}.weight"],
                                           s[p + f"mlp.experts.{expert}.bias"])], dim=-1)
        x = x + out
        i += 1
    x = F.layer_norm(x, (c,), s["backbone.last_norm.weight"], s["backbone.last_norm.bias"], eps=EPS)
    y = x.permute(0, 2, 1).reshape(b, c, hp, wp)
    for j in (0, 3):
        y = F.conv_transpose2d(y, s[f"{head}deconv_layers.{j}.weight"], stride=2, padding=1)
        bn = f"{head}deconv_layers.{j + 1}."
        y = F.relu(F.batch_norm(y, s[bn + "running_mean"], s[bn + "running_var"], s[bn + "weight"],
                                s[bn + "bias"], training=False, eps=1e-5))
    return F.conv2d(y, s[f"{head}final_layer.weight"][:keypoints], s[f"{head}final_layer.bias"][:keypoints])


def save(state, path, wrap=True):
    torch.save({"meta": {"note": "synthetic"}, "state_dict": state} if wrap else state, path)
    return path


def test_a_vitpose_repository_file_gives_what_its_code_computes(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = repository_state(gen)
    images = torch.randn(2, 3, 64, 48, generator=gen)
    model, _, meta = load_checkpoint(save(state, tmp_path / "vitpose_b.pth"), preset=tiny_preset())
    assert meta["source"] == "mmpose checkpoint"
    pos = state["backbone.pos_embed"]
    torch.testing.assert_close(model.backbone.pos_embed.data, pos[:, 1:] + pos[:, :1], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference_forward(state, images), rtol=1e-4, atol=1e-5)


def test_a_data_parallel_vitpose_repository_file_loads_too(tmp_path):
    state = repository_state(torch.Generator().manual_seed(1))
    wrapped = {"module." + k: v for k, v in state.items()}
    model, _, _ = load_checkpoint(save(wrapped, tmp_path / "dp.pth", wrap=False), preset=tiny_preset())
    torch.testing.assert_close(model.backbone.ln1.weight.data, state["backbone.last_norm.weight"], rtol=0, atol=0)


@pytest.mark.parametrize("part,expert,head", [("ap10k", 3, 2), ("apt36k", 4, 3)])
def test_a_vitpose_plus_file_gives_its_chosen_datasets_part(tmp_path, part, expert, head):
    gen = torch.Generator().manual_seed(2)
    state = repository_state(gen, moe=True)
    images = torch.randn(1, 3, 64, 48, generator=gen)
    path = save(state, tmp_path / "vitpose_plus_b.pth")
    model, _, _ = load_checkpoint(path, preset=tiny_preset(), part=part)
    expected = reference_forward(state, images, expert=expert, head=f"associate_keypoint_heads.{head}.")
    with torch.no_grad():
        torch.testing.assert_close(model(images), expected, rtol=1e-4, atol=1e-5)
        others = [reference_forward(state, images, expert=x, head=f"associate_keypoint_heads.{x - 1}.")
                  for x in range(1, NUM_EXPERTS) if x != expert]
        assert all((model(images) - o).abs().max() > 1e-2 for o in others)  # the parts do differ


def test_a_vitpose_plus_file_loads_ap10ks_part_by_default(tmp_path):
    state = repository_state(torch.Generator().manual_seed(3), moe=True)
    path = save(state, tmp_path / "vitpose_plus.pth")
    model, _, _ = load_checkpoint(path, preset=tiny_preset())
    fc2 = model.backbone.layers[1].ffn.layers[1]
    torch.testing.assert_close(fc2.weight.data[-EXPERT_PART:], state["backbone.blocks.1.mlp.experts.3.weight"],
                               rtol=0, atol=0)


def test_vitpose_plus_split_concatenates_shared_and_expert_rows_as_model_split_does():
    state = repository_state(torch.Generator().manual_seed(4), moe=True)
    split = vitpose_plus_split(state, "apt36k")
    w = split["backbone.blocks.0.mlp.fc2.weight"]
    assert w.shape == (16, 32)
    torch.testing.assert_close(w[:12], state["backbone.blocks.0.mlp.fc2.weight"], rtol=0, atol=0)
    torch.testing.assert_close(w[12:], state["backbone.blocks.0.mlp.experts.4.weight"], rtol=0, atol=0)
    torch.testing.assert_close(split["backbone.blocks.0.mlp.fc2.bias"][12:],
                               state["backbone.blocks.0.mlp.experts.4.bias"], rtol=0, atol=0)
    assert split["keypoint_head.final_layer.weight"].shape[0] == VITPOSE_PLUS_PARTS["apt36k"][2] == K
    torch.testing.assert_close(split["keypoint_head.deconv_layers.3.weight"],
                               state["associate_keypoint_heads.3.deconv_layers.3.weight"], rtol=0, atol=0)
    assert not any("experts" in k or k.startswith("associate_keypoint_heads.") for k in split)
    coco = vitpose_plus_split(state, "coco")  # expert 0 and the main head
    torch.testing.assert_close(coco["keypoint_head.final_layer.bias"], state["keypoint_head.final_layer.bias"])


def test_an_unknown_or_missing_vitpose_plus_part_is_one_line_naming_it(tmp_path):
    state = repository_state(torch.Generator().manual_seed(5), moe=True)
    with pytest.raises(WeightsError, match="unknown ViTPose\\+ part 'horse'; choose one of coco, aic"):
        load_checkpoint(save(state, tmp_path / "plus.pth"), preset=tiny_preset(), part="horse")
    del state["backbone.blocks.1.mlp.experts.3.weight"]
    with pytest.raises(WeightsError) as err:
        load_checkpoint(save(state, tmp_path / "plus.pth"), preset=tiny_preset())
    assert "'backbone.blocks.1.mlp.experts.3.weight'" in str(err.value) and "\n" not in str(err.value)


def test_an_mmpose_1x_embedding_with_a_class_token_row_drops_it_as_mmpretrain_does(tmp_path):
    torch.manual_seed(6)
    source = ViTPose(K, **TINY).eval()
    state = source.state_dict()
    row = torch.randn(1, 1, 16)
    state["backbone.pos_embed"] = torch.cat([row, state["backbone.pos_embed"]], dim=1)
    model, _, _ = load_checkpoint(save(state, tmp_path / "mmpose1x.pth"), preset=tiny_preset())
    torch.testing.assert_close(model.backbone.pos_embed.data, source.backbone.pos_embed.data, rtol=0, atol=0)


@pytest.mark.parametrize("change,message", [
    (lambda s: s.update({"backbone.blocks.0.attn.relative_position_bias_table": torch.zeros(7, 2)}),
     "unexpected key 'backbone.blocks.0.attn.relative_position_bias_table'"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("backbone.blocks.1.")],
     "missing key 'backbone.layers.1.ln1.weight'"),
    (lambda s: s.update({"backbone.pos_embed": torch.zeros(1, 1 + 16 * 12, 16)}),
     "shape mismatch at 'backbone.pos_embed'"),
])
def test_a_file_that_does_not_fit_is_one_line_naming_the_first_bad_key(tmp_path, change, message):
    state = repository_state(torch.Generator().manual_seed(7))
    change(state)
    with pytest.raises(WeightsError) as err:
        load_checkpoint(save(state, tmp_path / "bad.pth"), preset=tiny_preset())
    assert message in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- against mmpose's keypoints


def test_a_vitpose_plus_file_made_from_the_parity_fixture_gives_mmposes_keypoints(tmp_path):
    """The fixture's ViTPose-repository weights, hidden as ViTPose+'s AP-10K part among other random parts."""
    description = json.loads((FIXTURES / "vitpose_fixture.json").read_text())
    reference = np.load(FIXTURES / description["reference"])
    raw = torch.load(FIXTURES / description["checkpoints"]["0.x"], map_location="cpu", weights_only=True)
    plain = raw["state_dict"]
    gen = torch.Generator().manual_seed(8)
    expert, head, _ = VITPOSE_PLUS_PARTS["ap10k"]
    plus = {}
    for key, value in plain.items():
        if key.endswith(("mlp.fc2.weight", "mlp.fc2.bias")):
            shared, part = value[:-EXPERT_PART], value[-EXPERT_PART:]
            plus[key] = shared
            prefix, leaf = key.rsplit(".fc2.", 1)
            for x in range(NUM_EXPERTS):
                plus[f"{prefix}.experts.{x}.{leaf}"] = part if x == expert else torch.randn(part.shape, generator=gen)
        elif key.startswith("keypoint_head."):
            for h in range(NUM_EXPERTS - 1):
                other = value if h == head or not value.is_floating_point() else value + 0.5 * torch.randn(
                    value.shape, generator=gen).abs()
                plus[f"associate_keypoint_heads.{h}." + key[len("keypoint_head."):]] = other
            plus[key] = value.flip(0) if value.dim() else value  # the COCO head: not the one to load
        else:
            plus[key] = value
    preset = get_preset(description["aptrack_preset"])
    preset = preset.with_(architecture={**preset.architecture, **description["aptrack_architecture"]})
    model, preset, _ = load_checkpoint(save(plus, tmp_path / "plus.pth"), preset=preset, part="ap10k")
    image = cv2.imread(str(FIXTURES / description["image"]), cv2.IMREAD_COLOR)
    boxes = reference["boxes"].astype(np.float32)
    out = TopDownPoseEstimator(model, preset, PoseConfig())(image, Instances(boxes, np.ones(len(boxes), np.float32)))
    assert np.abs(out.keypoints - reference["keypoints"]).max() <= 0.5
    assert np.abs(out.keypoint_scores - reference["keypoint_scores"]).max() <= 1e-3

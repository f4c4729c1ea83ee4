"""Model presets as data, create_model, checkpoint versions 1 and 2, `aptrack models`."""

import json

import numpy as np
import pytest
import torch

from aptrack.core.errors import ConfigError, WeightsError
from aptrack.core.instances import Instances
from aptrack.models import (Preset, build_checkpoint, build_network, count_flops, count_parameters, create_model,
                            get_preset, list_models, load_checkpoint)
from aptrack.models.checkpoint import convert_checkpoint
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator, normalize_crops

DEFAULT = "aptrack-pose-mnv2-256-ft4"


def test_every_preset_builds_its_network_with_the_published_size():
    assert DEFAULT in list_models()
    for name in list_models():
        preset = get_preset(name)
        with torch.device("meta"):  # shapes only: every family, full size, in no time
            model = build_network(preset)
            out = model(torch.zeros(1, 3, preset.input_size[1], preset.input_size[0]))
        w, h = preset.input_size
        k = preset.layout.num_keypoints
        if preset.codec["type"] == "simcc":  # RTMPose: x and y bin vectors, split_ratio bins per pixel
            ratio = preset.codec["simcc_split_ratio"]
            assert [tuple(o.shape) for o in out] == [(1, k, int(w * ratio)), (1, k, int(h * ratio))], name
        else:
            assert tuple(out.shape) == (1, k, h // 4, w // 4), name
    model = create_model(DEFAULT)
    assert count_parameters(model) == pytest.approx(5.37e6, rel=0.01)
    assert count_flops(model, (256, 256))["gmacs"] == pytest.approx(0.90, abs=0.01)


def test_pretrained_default_loads_the_committed_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    a = create_model(DEFAULT, pretrained=True)
    b = create_model(DEFAULT)
    assert not torch.equal(a.state_dict()["final.weight"], b.state_dict()["final.weight"])


def test_a_bad_preset_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        get_preset("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfamily: simplebaseline\narchitecture: {}\nlayout: ap10k\ninput_size: [64, 64]\n"
                   "codec: {type: aptrack-heatmap}\ncolour: rgb\n")
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        get_preset(bad)
    bad.write_text("name: x\nfamily: hrnet9000\narchitecture: {}\nlayout: ap10k\ninput_size: [64, 64]\n"
                   "codec: {type: aptrack-heatmap}\n")
    with pytest.raises(ConfigError, match="unknown family 'hrnet9000'"):
        create_model(get_preset(bad))


def test_imagenet_normalisation_in_pixel_units_is_bitwise_the_old_one():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    preset = get_preset(DEFAULT)
    new = normalize_crops(crops, preset.mean, preset.std, preset.color).numpy()
    rgb = crops[..., ::-1].astype(np.float32) / 255.0
    old = ((rgb - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32))
    assert np.array_equal(new, old.transpose(0, 3, 1, 2))
    bgr = normalize_crops(crops, preset.mean, preset.std, "bgr").numpy()
    assert not np.array_equal(bgr, new)


def test_version_1_and_version_2_files_give_identical_keypoints(tmp_path, monkeypatch):
    from aptrack.core import hub

    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    v2_path = hub.resolve(DEFAULT).path
    v2 = torch.load(v2_path, weights_only=True)
    assert v2["version"] == 2 and v2["model"] == DEFAULT
    p = v2["preset"]
    v1 = {"format": "aptrack-pose", "version": 1, "arch": p["architecture"],
          "codec": {"input_size": p["input_size"], **{k: p["codec"][k] for k in ("heatmap_size", "sigma",
                                                                               "blur_kernel")}},
          "layout": p["layout"], "state_dict": {k: v.float() if v.is_floating_point() else v
                                                for k, v in v2["state_dict"].items()},
          "meta": v2["meta"]}
    v1_path = tmp_path / "old.pt"
    torch.save(v1, v1_path)
    frame = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = Instances(np.array([[20.0, 10.0, 110.0, 100.0], [60.0, 30.0, 150.0, 118.0]]), [0.9, 0.8])
    out = []
    for path in (v1_path, v2_path):
        model, preset, meta = load_checkpoint(path)
        assert meta["val_metrics"]["AP"] > 0.6
        out.append(TopDownPoseEstimator(model, preset, PoseConfig())(frame, boxes))
    np.testing.assert_array_equal(out[0].keypoints, out[1].keypoints)
    np.testing.assert_array_equal(out[0].keypoint_scores, out[1].keypoint_scores)
    # and a version 1 file converts to a version 2 one with the same weights
    ckpt = convert_checkpoint(v1_path, tmp_path / "new.pt", name="renamed", half=False)
    assert ckpt["version"] == 2 and load_checkpoint(tmp_path / "new.pt")[1].name == "renamed"


def test_a_checkpoint_that_does_not_fit_its_preset_names_the_key(tmp_path):
    preset = Preset(name="tiny", family="simplebaseline", architecture={"deconv_channels": [8, 8, 8]},
                    layout=get_preset(DEFAULT).layout, input_size=(64, 64),
                    codec={"type": "aptrack-heatmap", "heatmap_size": [16, 16], "sigma": 1.0})
    ckpt = build_checkpoint(create_model(preset), preset, half=True)
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values() if v.is_floating_point())
    del ckpt["state_dict"]["final.bias"]
    torch.save(ckpt, tmp_path / "broken.pt")
    with pytest.raises(WeightsError, match="missing key 'final.bias'$"):
        load_checkpoint(tmp_path / "broken.pt")
    ckpt["state_dict"]["final.bias"] = torch.zeros(17)
    ckpt["state_dict"]["head.extra"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "broken.pt")
    with pytest.raises(WeightsError, match="unexpected key 'head.extra'$"):
        load_checkpoint(tmp_path / "broken.pt")
    del ckpt["state_dict"]["head.extra"]
    ckpt["state_dict"]["final.bias"] = torch.zeros(5)
    torch.save(ckpt, tmp_path / "broken.pt")
    with pytest.raises(WeightsError, match=r"shape mismatch at 'final.bias': \(5,\) in the file, \(17,\)"):
        load_checkpoint(tmp_path / "broken.pt")


def test_models_command_lists_the_zoo(capsys):
    from aptrack.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["name", "family", "input"]
    assert row.split()[:6] == [DEFAULT, "simplebaseline", "256x256", "5.37", "M", "0.90"]
    assert main(["models", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["reported_ap"] == pytest.approx(0.6002) and rows[0]["weights"] == "project"

"""Pose networks exported to ONNX and run by ONNX Runtime give torch's keypoints."""

import json

import numpy as np
import pytest
import torch
from test_cli import assert_one_line_error
from test_mmpose_parity import FIXTURE, FIXTURES, KEYPOINT_TOL, _load, _preset

from aptrack.cli import main
from aptrack.core.errors import AptrackError, WeightsError
from aptrack.core.instances import Instances
from aptrack.models.checkpoint import load_checkpoint
from aptrack.models.onnxrt import FORMAT, PRESET_KEY, OnnxPoseNetwork, export_onnx, read_onnx_preset
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator


@pytest.mark.parametrize("family", sorted(FIXTURES))
def test_every_zoo_family_exported_to_onnx_gives_torchs_and_mmposes_keypoints(family, tmp_path):
    description, reference, image = _load(family)
    model, preset, _ = load_checkpoint(FIXTURE / description["checkpoints"]["1.x"], preset=_preset(description))
    boxes = Instances(reference["boxes"].astype(np.float32), np.ones(len(reference["boxes"]), np.float32))
    torch_out = TopDownPoseEstimator(model, preset, PoseConfig())(image, boxes)
    onnx_file = export_onnx(model, preset, tmp_path / f"{family}.onnx")
    network = OnnxPoseNetwork(onnx_file)
    assert network.preset.to_dict() == preset.to_dict()  # the preset travels in the file
    onnx_out = TopDownPoseEstimator(network, network.preset, PoseConfig())(image, boxes)
    assert np.abs(onnx_out.keypoints - torch_out.keypoints).max() <= KEYPOINT_TOL
    assert np.abs(onnx_out.keypoints - reference["keypoints"]).max() <= KEYPOINT_TOL
    assert np.abs(onnx_out.keypoint_scores - torch_out.keypoint_scores).max() <= 1e-3


def test_the_onnx_network_takes_any_batch_size_and_returns_torchs_outputs(tmp_path):
    description, _, _ = _load("res")
    model, preset, _ = load_checkpoint(FIXTURE / description["checkpoints"]["1.x"], preset=_preset(description))
    network = OnnxPoseNetwork(export_onnx(model, preset, tmp_path / "res.onnx"))
    w, h = preset.input_size
    for n in (1, 3):
        x = torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(n))
        with torch.inference_mode():
            expected = model(x)
        got = network(x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-3, atol=1e-3)


def test_an_onnx_file_without_aptracks_metadata_is_refused_in_one_line(tmp_path):
    import onnx

    description, _, _ = _load("res")
    model, preset, _ = load_checkpoint(FIXTURE / description["checkpoints"]["1.x"], preset=_preset(description))
    path = export_onnx(model, preset, tmp_path / "res.onnx")
    graph = onnx.load(str(path))
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["aptrack_format"] == FORMAT and json.loads(props[PRESET_KEY])["name"] == preset.name
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "bare.onnx"))
    with pytest.raises(WeightsError, match="without aptrack's metadata"):
        read_onnx_preset(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a model" * 10)
    with pytest.raises(WeightsError, match="not a readable ONNX file"):
        OnnxPoseNetwork(tmp_path / "junk.onnx")


def test_an_onnx_file_whose_input_does_not_fit_its_preset_is_refused(tmp_path):
    import onnx

    description, _, _ = _load("res")
    model, preset, _ = load_checkpoint(FIXTURE / description["checkpoints"]["1.x"], preset=_preset(description))
    path = export_onnx(model, preset.with_(input_size=(64, 64)), tmp_path / "lie.onnx")
    # the graph was traced at the preset's size; make the metadata claim another one
    graph = onnx.load(str(path))
    for p in graph.metadata_props:
        if p.key == PRESET_KEY:
            p.value = json.dumps({**json.loads(p.value), "input_size": [96, 128]})
    onnx.save(graph, str(path))
    with pytest.raises(WeightsError, match="as its preset says"):
        OnnxPoseNetwork(path)


def test_export_then_run_the_onnx_file_gives_the_torch_runs_keypoints(mirror, tmp_path, capsys):
    video = mirror / "videos" / "dog_clip.avi"
    onnx_file = tmp_path / "default.onnx"
    assert main(["export", "--pose", "aptrack-pose-mnv2-256-ft4", "-o", str(onnx_file)]) == 0
    assert onnx_file.is_file() and not list(tmp_path.glob(".*incomplete*"))
    runs = {}
    for name, flags in (("torch", ["--backend", "torch"]), ("onnx", ["--pose", str(onnx_file)]),
                        ("auto", [])):
        out = tmp_path / name
        assert main(["run", str(video), "-o", str(out), "--no-video", "--end", "6", "-q", *flags]) == 0
        data = json.loads((out / "dog_clip.json").read_text())
        runs[name] = np.array([a["keypoints"] for a in data["annotations"]], float).reshape(-1, 17, 3)
        if name != "torch":
            assert data["info"]["models"]["pose"]["backend"] == "onnxruntime"
    assert len(runs["torch"]) == 6
    for name in ("onnx", "auto"):
        assert runs[name].shape == runs["torch"].shape
        assert np.abs(runs[name][..., :2] - runs["torch"][..., :2]).max() <= KEYPOINT_TOL


def test_exporting_an_onnx_file_or_to_a_missing_folder_is_one_clear_line(mirror, tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert_one_line_error(main(["export", "--pose", str(tmp_path / "m.onnx")]), capsys.readouterr().err,
                          "is an ONNX file already")
    code = main(["export", "--pose", "aptrack-pose-mnv2-256-ft4", "-o", str(tmp_path / "no" / "m.onnx")])
    assert_one_line_error(code, capsys.readouterr().err, "does not exist")


def test_int8_export_quantises_the_matrix_products_and_leaves_convolutions_fp32(tmp_path):
    import onnx

    kinds = {}
    for family in ("res", "vitpose"):
        description, reference, image = _load(family)
        model, preset, _ = load_checkpoint(FIXTURE / description["checkpoints"]["1.x"], preset=_preset(description))
        path = export_onnx(model, preset, tmp_path / f"{family}-int8.onnx", precision="int8")
        kinds[family] = {n.op_type for n in onnx.load(str(path)).graph.node}
        if family == "res":  # nothing to quantise: the keypoints are fp32's
            boxes = Instances(reference["boxes"].astype(np.float32), np.ones(len(reference["boxes"]), np.float32))
            network = OnnxPoseNetwork(path)
            out = TopDownPoseEstimator(network, network.preset, PoseConfig())(image, boxes)
            assert np.abs(out.keypoints - reference["keypoints"]).max() <= KEYPOINT_TOL
    assert "ConvInteger" not in kinds["res"] and "Conv" in kinds["res"]
    assert "MatMulInteger" in kinds["vitpose"] or "DynamicQuantizeMatMul" in kinds["vitpose"]


def test_auto_backend_falls_back_to_torch_when_the_onnx_cache_cannot_be_written(mirror, tmp_path, monkeypatch):
    from aptrack.pipeline import build_pose

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("APTRACK_CACHE", str(blocker))
    estimator, info = build_pose(PoseConfig(weights="aptrack-pose-mnv2-256-ft4", backend="auto"), "cpu")
    assert info["backend"] == "torch" and isinstance(estimator.model, torch.nn.Module)
    with pytest.raises(AptrackError, match="cannot write"):
        build_pose(PoseConfig(weights="aptrack-pose-mnv2-256-ft4", backend="onnxruntime"), "cpu")

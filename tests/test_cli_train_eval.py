"""``aptrack train`` and ``aptrack eval`` end to end on a few real Animal-Pose images."""

import json

import pytest
import yaml
from conftest import animalpose_subset
from test_cli import assert_one_line_error
from test_evaluation import cocoeval_on_files

from aptrack.cli import main
from aptrack.core.errors import ConfigError

TINY_CONFIG = {
    "name": "tiny", "layout": "ap10k", "seed": 0, "eval_every": 1,
    "model": {"deconv_channels": [16, 16, 16], "pretrained": None, "frozen_stages": 2},
    "codec": {"input_size": [64, 64], "heatmap_size": [16, 16], "sigma": 1.0, "blur_kernel": 3},
    "optim": {"epochs": 1, "batch_size": 4, "warmup_iters": 1},
    "split": {"val_instances": 3, "seed": 0},
}


@pytest.fixture
def tiny(animalpose, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    data = animalpose_subset(tmp_path / "sub.json", 10)
    return config, data, animalpose / "images"


def test_train_then_eval_json_matches_pycocotools(tiny, tmp_path, capsys):
    config, data, images = tiny
    run_dir = tmp_path / "run"
    code = main(["train", "--config", str(config), "--data", str(data), "--images", str(images),
                 "-o", str(run_dir), "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "epoch 1/1" in out.out and "val AP" in out.out
    assert {"model.pt", "best.pt", "last.pt"} <= {p.name for p in run_dir.iterdir()}

    save = tmp_path / "eval"
    code = main(["eval", "--data", str(data), "--images", str(images), "--weights",
                 str(run_dir / "model.pt"), "--split", "val", "--val-instances", "3",
                 "--format", "json", "--save", str(save), "--device", "cpu", "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    metrics = json.loads(out.out)
    for key in ("AP", "AP50", "AP75", "AR", "PCK@0.05", "EPE"):
        assert isinstance(metrics[key], float), key
    assert metrics["instances"] >= 3 and metrics["split"] == "val"
    sigmas = [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072,
              0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089]
    stats = cocoeval_on_files(save / "gt.json", save / "results.json", sigmas)
    assert metrics["AP"] == pytest.approx(stats[0], abs=1e-12)
    assert metrics["AR"] == pytest.approx(stats[5], abs=1e-12)


def test_eval_table_with_detector_boxes(ap10k_sample, mirror, random_pose_checkpoint, capsys):
    code = main(["eval", "--data", str(ap10k_sample / "test_ap10k.json"), "--images", str(ap10k_sample),
                 "--boxes", "detector", "--weights", str(random_pose_checkpoint), "--device", "cpu",
                 "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "AP50" in out.out and "PCK@0.05" in out.out and "EPE" in out.out
    assert "AP antelope" in out.out  # species of the best-OKS animal


def test_eval_missing_annotation_file(tmp_path, random_pose_checkpoint, capsys):
    code = main(["eval", "--data", str(tmp_path / "nope.json"), "--images", str(tmp_path),
                 "--weights", str(random_pose_checkpoint), "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "annotation file not found")


def test_eval_missing_image_folder(ap10k_sample, tmp_path, random_pose_checkpoint, capsys):
    code = main(["eval", "--data", str(ap10k_sample / "test_ap10k.json"), "--images",
                 str(tmp_path / "nowhere"), "--weights", str(random_pose_checkpoint), "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "image folder not found")


def test_train_with_too_few_animals_left_to_train_is_a_clear_error(tiny, tmp_path, capsys):
    config, data, images = tiny
    bad = yaml.safe_load(config.read_text())
    bad["split"]["val_instances"] = 10_000
    bad["split"]["val_fraction"] = 0.99  # (held out: at most this fraction; every animal but one here)
    config.write_text(yaml.safe_dump(bad))
    code = main(["train", "--config", str(config), "--data", str(data), "--images", str(images),
                 "-o", str(tmp_path / "run"), "--device", "cpu", "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "training animals are fewer than one batch")


def test_the_held_out_animals_are_at_most_a_fraction_of_the_data_and_at_least_one():
    from aptrack.train.trainer import SplitConfig

    assert SplitConfig(val_instances=1100).held_out(5475) == 1100
    assert SplitConfig(val_instances=1100).held_out(300) == 75
    assert SplitConfig(val_instances=1100).held_out(2) == 1
    with pytest.raises(ConfigError, match="val_fraction"):
        SplitConfig(val_fraction=1.0)


def test_train_with_malformed_json_is_a_clear_error(tiny, tmp_path, capsys):
    config, _, images = tiny
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": {}, "annotations": [')
    code = main(["train", "--config", str(config), "--data", str(broken), "--images", str(images),
                 "-o", str(tmp_path / "run"), "--device", "cpu", "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "not valid json")


def test_resume_without_a_run_is_a_clear_error(tiny, tmp_path, capsys):
    config, data, images = tiny
    code = main(["train", "--config", str(config), "--data", str(data), "--images", str(images),
                 "-o", str(tmp_path / "run"), "--device", "cpu", "--quiet", "--resume"])
    assert_one_line_error(code, capsys.readouterr().err, "nothing to resume")

import dataclasses
import re

import pytest

from aptrack.core.errors import ConfigError
from aptrack.core.layout import load_layout
from aptrack.pipeline import PipelineConfig, available_pipelines, load_pipeline


def test_default_preset_loads_into_frozen_dataclasses():
    cfg = load_pipeline("default")
    assert isinstance(cfg, PipelineConfig)
    assert cfg.detector.classes == tuple(range(14, 24))
    assert cfg.tracker.track_buffer == 60 and cfg.tracker.min_hits_while_lost == 6
    with pytest.raises(Exception):
        cfg.tracker.track_buffer = 3  # frozen
    assert "default" in available_pipelines()


def test_unknown_keys_and_presets_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tracker:\n  trak_buffer: 5\n")
    with pytest.raises(ConfigError, match="trak_buffer"):
        load_pipeline(bad)
    with pytest.raises(ConfigError, match="unknown pipeline preset"):
        load_pipeline("no-such-preset")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tracker: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(broken)


def test_a_file_that_changes_one_threshold_keeps_every_other_setting_of_the_default_preset(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("tracker:\n  track_buffer: 5\n")
    cfg, default = load_pipeline(p), load_pipeline("default")
    assert cfg.tracker.track_buffer == 5 and default.tracker.track_buffer != 5
    assert cfg.tracker == dataclasses.replace(default.tracker, track_buffer=5)
    assert cfg.pose == default.pose and cfg.pose.weights is not None  # the pose model is kept
    for section in ("detector", "appearance", "propagation", "smoothing", "draw"):
        assert getattr(cfg, section) == getattr(default, section)
    assert (cfg.name, cfg.base, default.base) == ("mine", "default", None)


def test_a_file_is_laid_over_the_preset_its_base_names(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\nbase: lab\npose: {flip_test: false}\n")
    cfg, lab = load_pipeline(p), load_pipeline("lab")
    assert cfg.pose == dataclasses.replace(lab.pose, flip_test=False)
    assert cfg.tracker == lab.tracker and cfg.base == "lab"
    (tmp_path / "over.yaml").write_text("base: mine.yaml\ntracker: {min_hits: 9}\n")  # a file beside it
    over = load_pipeline(tmp_path / "over.yaml")
    assert over.tracker.min_hits == 9 and over.pose.flip_test is False and over.base == "mine.yaml"


def test_a_loop_of_bases_or_a_bad_base_is_one_config_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_pipeline(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: [lab]\n")
    with pytest.raises(ConfigError, match="base must be a preset name"):
        load_pipeline(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: nosuch\n")
    with pytest.raises(ConfigError, match="unknown pipeline preset 'nosuch'"):
        load_pipeline(tmp_path / "d.yaml")


def test_settings_out_of_range_name_the_key_and_value(tmp_path):
    p = tmp_path / "bad.yaml"
    for text, needle in (("pose: {backend: tpu}", "pose.backend must be one of auto, torch, onnxruntime"),
                         ("pose: {min_box_score: 2}", "pose.min_box_score must be in [0, 1], got 2"),
                         ("pose: {batch_size: 0}", "pose.batch_size must be >= 1"),
                         ("detector: {score_threshold: -0.5}", "detector.score_threshold must be in [0, 1], got -0.5"),
                         ("detector: {image_size: 500}", "detector.image_size must be a multiple of 32"),
                         ("tracker: {high_score_threshold: -3}", "tracker.high_score_threshold"),
                         ("tracker: {yield_look_max: 2}", "tracker.yield_look_max must be in [-1, 1], got 2"),
                         ("tracker: {lost_yield_iou: 1.5}", "tracker.lost_yield_iou must be in [0, 1], got 1.5"),
                         ("tracker: {yield_look_margin: -0.1}", "tracker.yield_look_margin must be in [0, 1], got -0.1"),
                         ("tracker: {inherit_iou: 2}", "tracker.inherit_iou must be in [0, 1], got 2"),
                         ("draw: {line_thickness: 0}", "draw.line_thickness must be >= 1, got 0")):
        p.write_text(text + "\n")
        with pytest.raises(ConfigError, match=re.escape(needle)):
            load_pipeline(p)


def test_ap10k_layout_facts():
    layout = load_layout("ap10k")
    assert layout.num_keypoints == 17
    assert layout.keypoints[3] == "neck" and layout.keypoints[4] == "root_of_tail"
    assert (5, 8) in layout.flip_pairs and len(layout.flip_pairs) == 7
    assert layout.sigmas[11] == 0.107
    # every flip pair is a left/right pair of the same joint
    for a, b in layout.flip_pairs:
        assert layout.keypoints[a].replace("left", "right") == layout.keypoints[b]


def test_every_pipeline_preset_loads_and_lab_differs_from_default_only_in_min_hits_buffer_merged_boxes_and_looks():
    import dataclasses

    default = load_pipeline("default")
    for name in available_pipelines():
        assert load_pipeline(name).name == name
    lab = load_pipeline("lab")
    assert (lab.tracker.min_hits, lab.tracker.min_hits_while_lost, lab.tracker.track_buffer) == (6, 6, 100)
    assert (lab.tracker.merged_cover, default.tracker.merged_cover) == (0.75, 0.0)
    assert (lab.tracker.look_min_similarity, default.tracker.look_min_similarity) == (0.5, -1.0)
    assert (lab.tracker.yield_look_max, default.tracker.yield_look_max) == (0.35, -1.0)
    assert (lab.tracker.yield_look_margin, default.tracker.yield_look_margin) == (0.1, 0.0)
    assert (lab.tracker.lost_yield_iou, default.tracker.lost_yield_iou) == (0.3, 0.0)
    same = dataclasses.replace(lab, name="default", base=None,
                               tracker=dataclasses.replace(lab.tracker, min_hits=3, merged_cover=0.0, track_buffer=60,
                                                           look_min_similarity=-1.0, yield_look_max=-1.0,
                                                           lost_yield_iou=0.0, yield_look_margin=0.0))
    assert same == default and lab.base == "default"

import pytest

from aptrack.core.errors import ConfigError
from aptrack.core.layout import load_layout
from aptrack.pipeline import PipelineConfig, available_pipelines, load_pipeline
from aptrack.track.config import TrackerConfig


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


def test_partial_preset_keeps_defaults(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("tracker:\n  track_buffer: 5\n")
    cfg = load_pipeline(p)
    assert cfg.tracker.track_buffer == 5
    assert cfg.tracker.min_hits == TrackerConfig().min_hits


def test_ap10k_layout_facts():
    layout = load_layout("ap10k")
    assert layout.num_keypoints == 17
    assert layout.keypoints[3] == "neck" and layout.keypoints[4] == "root_of_tail"
    assert (5, 8) in layout.flip_pairs and len(layout.flip_pairs) == 7
    assert layout.sigmas[11] == 0.107
    # every flip pair is a left/right pair of the same joint
    for a, b in layout.flip_pairs:
        assert layout.keypoints[a].replace("left", "right") == layout.keypoints[b]


def test_every_pipeline_preset_loads_and_lab_differs_from_default_only_in_min_hits():
    import dataclasses

    default = load_pipeline("default")
    for name in available_pipelines():
        assert load_pipeline(name).name == name
    lab = load_pipeline("lab")
    assert (lab.tracker.min_hits, lab.tracker.min_hits_while_lost, lab.tracker.track_buffer) == (6, 6, 60)
    same = dataclasses.replace(lab, name="default", tracker=dataclasses.replace(lab.tracker, min_hits=3))
    assert same == default

"""One-Euro keypoint smoothing: still keypoints lose their jitter, moving ones keep up, raw values stay."""

import json

import numpy as np
import pytest
from conftest import write_video

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.track.smooth import KeypointSmoother, SmoothingConfig, smoothing_factor


def _frame(f, xy, tid=1):
    kp = np.asarray(xy, float).reshape(1, 1, 2)
    return Instances([[0, 0, 10, 10]], [0.9], keypoints=kp, keypoint_scores=[[0.9]], track_ids=[tid],
                     frame_index=f)


def _run(config, xs, fps=30.0):
    smoother = KeypointSmoother(config, fps)
    return np.array([smoother(_frame(f, (x, 0.0))).keypoints[0, 0, 0] for f, x in enumerate(xs)])


def test_smoothing_factor_matches_the_first_order_low_pass():
    # tau = 1 / (2 pi fc); alpha = 1 / (1 + tau / dt)
    assert smoothing_factor(1.0, 1 / 30) == pytest.approx(1 / (1 + 30 / (2 * np.pi)))


def test_a_still_keypoint_loses_most_of_its_jitter():
    rng = np.random.default_rng(0)
    raw = 100 + rng.normal(0, 2.0, 300)
    smooth = _run(SmoothingConfig(kind="one-euro", min_cutoff=1.0, beta=0.0), raw)
    assert np.std(smooth[30:]) < 0.4 * np.std(raw[30:])
    assert abs(np.mean(smooth[30:]) - 100) < 0.5


def test_beta_lets_a_moving_keypoint_keep_up():
    ramp = np.arange(60) * 10.0  # 300 px/s at 30 frames/s
    slow = _run(SmoothingConfig(kind="one-euro", min_cutoff=1.0, beta=0.0), ramp)
    fast = _run(SmoothingConfig(kind="one-euro", min_cutoff=1.0, beta=0.1), ramp)
    assert ramp[-1] - fast[-1] < 0.3 * (ramp[-1] - slow[-1])


def test_off_returns_the_input_and_on_leaves_it_alone():
    frame = _frame(1, (5.0, 5.0))
    assert KeypointSmoother(SmoothingConfig(), 30)(frame) is frame
    on = KeypointSmoother(SmoothingConfig(kind="one-euro"), 30)
    on(_frame(0, (0.0, 0.0)))
    out = on(frame)
    assert frame.keypoints[0, 0].tolist() == [5.0, 5.0] and out.keypoints[0, 0, 0] < 5.0
    # another track starts afresh: its first keypoints pass unchanged
    assert on(_frame(2, (50.0, 50.0), tid=2)).keypoints[0, 0].tolist() == [50.0, 50.0]


def test_smoothing_settings_out_of_range_are_config_errors():
    with pytest.raises(ConfigError, match="smoothing.kind"):
        SmoothingConfig(kind="kalman")
    with pytest.raises(ConfigError, match="min_cutoff"):
        SmoothingConfig(min_cutoff=0)


def test_a_smoothed_run_keeps_the_raw_keypoints_in_its_json(tmp_path):
    from test_exports import LAYOUT, PosedSquares

    from aptrack.pipeline import Pipeline, PipelineConfig
    from aptrack.runner import process_video
    from aptrack.track import PoseTracker
    from aptrack.track.config import TrackerConfig

    video = write_video(tmp_path / "sq.avi", 6, size=(64, 64))
    config = PipelineConfig(smoothing=SmoothingConfig(kind="one-euro", beta=0.0))
    pipe = Pipeline(PosedSquares(), PoseTracker(TrackerConfig(min_hits=1)), layout=LAYOUT)
    list(process_video(video, pipeline=pipe, config=config, output=tmp_path / "out", exports="json"))
    recs = json.loads((tmp_path / "out" / "sq.json").read_text())["annotations"]
    last = [r for r in recs if r["frame"] == 5 and r["track_id"] == 1][0]
    raw_x, smooth_x = last["keypoints_raw"][0], last["keypoints"][0]
    assert raw_x == 7.0 and smooth_x < raw_x  # the square moves right 1 px a frame; the filter lags

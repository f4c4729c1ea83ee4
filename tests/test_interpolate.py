"""Gap filling: a track's missing frames are interpolated once its animal is found again, and marked."""

import numpy as np
import pytest

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.track.interpolate import GapFiller, InterpolationConfig, fill_gaps


def _frame(f, rows):
    """rows: (track id, x1) pairs; boxes 10 wide, one keypoint at the box's top-left."""
    boxes = np.array([[x, 0, x + 10, 10] for _, x in rows], float).reshape(-1, 4)
    return Instances(boxes_xyxy=boxes, scores=np.full(len(rows), 0.8), keypoints=boxes[:, None, :2],
                     keypoint_scores=np.full((len(rows), 1), 0.9), track_ids=[t for t, _ in rows],
                     frame_index=f)


def _run(frames, max_gap):
    return [tracked for _, tracked in fill_gaps(((f.frame_index, f) for f in frames), max_gap)]


def test_a_gap_is_filled_linearly_and_marked_interpolated():
    frames = [_frame(0, [(1, 0.0)]), _frame(1, []), _frame(2, []), _frame(3, [(1, 30.0)])]
    out = _run(frames, max_gap=5)
    assert [len(f) for f in out] == [1, 1, 1, 1]
    assert [float(f.boxes_xyxy[0, 0]) for f in out] == [0.0, 10.0, 20.0, 30.0]
    assert [bool(f.interpolated[0]) for f in out] == [False, True, True, False]
    assert out[1].keypoints[0, 0].tolist() == [10.0, 0.0] and out[1].track_ids.tolist() == [1]
    assert out[1].keypoint_scores[0, 0] == pytest.approx(0.9) and out[1].frame_index == 1


def test_a_gap_longer_than_max_gap_stays_open():
    frames = [_frame(0, [(1, 0.0)])] + [_frame(f, []) for f in range(1, 4)] + [_frame(4, [(1, 40.0)])]
    assert [len(f) for f in _run(frames, max_gap=2)] == [1, 0, 0, 0, 1]
    assert [len(f) for f in _run(frames, max_gap=3)] == [1, 1, 1, 1, 1]


def test_filled_frames_keep_their_order_and_other_animals():
    frames = [_frame(0, [(1, 0.0), (2, 100.0)]), _frame(1, [(2, 101.0)]), _frame(2, [(1, 20.0), (2, 102.0)])]
    out = _run(frames, max_gap=3)
    assert [f.frame_index for f in out] == [0, 1, 2]
    assert out[1].track_ids.tolist() == [1, 2] and out[1].interpolated.tolist() == [True, False]


def test_frames_are_released_max_gap_behind_and_the_rest_on_flush():
    filler = GapFiller(max_gap=2)
    released = [len(filler.push(_frame(f, [(1, float(f))]), f)) for f in range(4)]
    assert released == [0, 0, 1, 1]
    assert [payload for payload, _ in filler.flush()] == [2, 3]


def test_off_passes_the_stream_through_unchanged():
    frames = [_frame(0, [(1, 0.0)]), _frame(1, []), _frame(2, [(1, 20.0)])]
    out = _run(frames, max_gap=0)
    assert all(a is b for a, b in zip(out, frames))


def test_max_gap_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="max_gap"):
        InterpolationConfig(max_gap=-1)

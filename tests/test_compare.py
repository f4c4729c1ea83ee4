"""The trackers that ``aptrack bench --compare`` runs beside aptrack's, through one adapter interface."""

import numpy as np
import pytest

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.eval.compare import BOXMOT_TRACKERS, COMPARE_TRACKERS, make_tracker


def _two_animals(frame: int) -> Instances:
    """Two boxes 200 px apart, each moving 4 px a frame to the right."""
    x = 40.0 + 4 * frame
    boxes = np.array([[x, 50, x + 60, 110], [x + 200, 60, x + 260, 140]], np.float32)
    return Instances(boxes, scores=[0.9, 0.85], frame_index=frame)


@pytest.mark.parametrize("name", COMPARE_TRACKERS)
def test_each_compared_tracker_keeps_two_separate_animals_under_two_ids_from_one(name):
    if name in BOXMOT_TRACKERS:
        pytest.importorskip("boxmot")
    tracker = make_tracker(name)
    image = np.full((240, 480, 3), 127, np.uint8)
    image[::8] = 60  # some texture for the trackers that estimate camera motion
    seen = []
    for f in range(10):
        ids, boxes = tracker.update(_two_animals(f), image)
        seen.append((ids, boxes))
    ids, boxes = seen[-1]
    assert len(ids) == 2 and len(set(ids.tolist())) == 2 and ids.min() >= 1
    order = np.argsort(boxes[:, 0])
    np.testing.assert_allclose(boxes[order], _two_animals(9).boxes_xyxy, atol=3.0)
    # the same ids in the last three frames
    for earlier, _ in seen[-3:]:
        assert sorted(earlier.tolist()) == sorted(ids.tolist())
    tracker.reset()
    ids, _ = tracker.update(_two_animals(0), image)
    assert len(ids) == 0 or ids.min() >= 1


def test_an_unknown_compare_tracker_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match="ocsort"):
        make_tracker("sort")

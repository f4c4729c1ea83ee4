"""The tracker on scripted scenes: crossing animals, hiding, low-score boxes, false alarms."""

import numpy as np

from aptrack.core.instances import Instances
from aptrack.track import PoseTracker
from aptrack.track.config import TrackerConfig


def frame(index, boxes, scores=None, keypoints=None):
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9) if scores is None else scores
    kwargs = {}
    if keypoints is not None:
        kwargs = dict(keypoints=keypoints, keypoint_scores=np.ones(np.shape(keypoints)[:2]))
    return Instances(boxes_xyxy=boxes, scores=scores, frame_index=index, **kwargs)


def box_at(cx, cy, w=40, h=30):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def ids_by_x(out):
    order = np.argsort(out.boxes_xyxy[:, 0])
    return out.track_ids[order].tolist()


def test_two_animals_crossing_keep_their_ids():
    tracker = PoseTracker(TrackerConfig())
    history = {}
    for f in range(40):
        a = box_at(50 + 5 * f, 100)      # moves right
        b = box_at(250 - 5 * f, 104)     # moves left, crosses a around f=20
        out = tracker.update(frame(f, [a, b]))
        if a[0] == b[0]:
            continue  # the frame where they coincide says nothing about who is who
        for box, tid in zip(out.boxes_xyxy, out.track_ids):
            direction = "right" if abs(box[0] - a[0]) < 1e-3 else "left"
            history.setdefault(direction, set()).add(int(tid))
    assert history == {"right": {1}, "left": {2}}
    assert tracker.num_ids == 2


def test_hidden_animal_gets_its_old_id_back_within_the_buffer():
    tracker = PoseTracker(TrackerConfig(track_buffer=10))
    ids = []
    for f in range(30):
        visible = not (10 <= f < 18)     # hidden for 8 frames
        out = tracker.update(frame(f, [box_at(100 + 2 * f, 80)] if visible else []))
        ids += out.track_ids.tolist()
    assert set(ids) == {1}
    assert len(ids) == 22


def test_animal_hidden_longer_than_the_buffer_gets_a_new_id():
    tracker = PoseTracker(TrackerConfig(track_buffer=5))
    ids = []
    for f in range(30):
        visible = not (10 <= f < 20)
        out = tracker.update(frame(f, [box_at(100, 80)] if visible else []))
        ids += out.track_ids.tolist()
    assert sorted(set(ids)) == [1, 2]


def _reappears_beside(config):
    """An animal still for 10 frames, hidden for 10, back one box width and 5 px to the right."""
    tracker = PoseTracker(config)
    ids = []
    for f in range(30):
        box = box_at(100, 80) if f < 10 else box_at(145, 80)
        out = tracker.update(frame(f, [box] if not 10 <= f < 20 else []))
        ids += out.track_ids.tolist()
    return ids


def test_the_lost_gate_grows_with_time_lost_so_an_animal_back_far_away_keeps_its_id():
    fixed = _reappears_beside(TrackerConfig(lost_buffer_growth=0.0))
    assert sorted(set(fixed)) == [1, 2]  # 30% per side does not reach it: a new id
    growing = _reappears_beside(TrackerConfig(lost_buffer_growth=0.1, lost_box_buffer_max=1.0))
    assert set(growing) == {1} and len(growing) == 20  # 0.3 + 0.1 x 10 frames, capped at 1.0
    capped = _reappears_beside(TrackerConfig(lost_buffer_growth=0.1, lost_box_buffer_max=0.4))
    assert sorted(set(capped)) == [1, 2]


def test_tracker_settings_out_of_range_are_config_errors():
    import pytest

    from aptrack.core.errors import ConfigError
    with pytest.raises(ConfigError, match="lost_buffer_growth"):
        TrackerConfig(lost_buffer_growth=-0.1)
    with pytest.raises(ConfigError, match="high_score_threshold"):
        TrackerConfig(high_score_threshold=1.5)
    for bad in ({"relook_frames": -1}, {"reid_min_area_ratio": 1.5}, {"relook_margin": -0.1},
                {"merged_cover": 2.0}, {"merged_min_growth": -1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrackerConfig(**bad)


def test_low_score_boxes_keep_a_track_alive_but_cannot_start_one():
    tracker = PoseTracker(TrackerConfig())
    out0 = tracker.update(frame(0, [box_at(100, 100)]))
    assert out0.track_ids.tolist() == [1]
    for f in range(1, 6):  # the animal is half hidden: low score; a low-score false alarm elsewhere
        out = tracker.update(frame(f, [box_at(100 + f, 100), box_at(400, 400)], scores=np.array([0.2, 0.2])))
        assert out.track_ids.tolist() == [1]
        assert out.scores.tolist() == [np.float32(0.2)]
    assert tracker.num_ids == 1


def test_a_repeated_mid_score_animal_gets_an_id_after_min_hits_frames():
    # 0.4 is below high_score_threshold (0.5) but above new_track_threshold (0.3)
    tracker = PoseTracker(TrackerConfig(min_hits=3))
    tracker.update(frame(0, [box_at(50, 50)]))
    seen = []
    for f in range(1, 5):
        out = tracker.update(frame(f, [box_at(50, 50), box_at(300, 300)], scores=np.array([0.9, 0.4])))
        seen.append(out.track_ids.tolist())
    assert seen == [[1], [1], [1, 2], [1, 2]]


def _reappear_shifted(config):
    """An animal stands still, hides for 3 frames and comes back 30 px to the right
    (plain IoU with where it was: 0.14; with boxes widened by 30%: 0.36)."""
    tracker = PoseTracker(config)
    ids = []
    for f in range(20):
        if 10 <= f < 13:
            boxes = []
        else:
            boxes = [box_at(100 if f < 10 else 130, 100)]
        ids.append(tracker.update(frame(f, boxes)).track_ids.tolist())
    return ids


def test_lost_animal_that_moved_while_hidden_gets_its_id_back_with_widened_boxes():
    ids = _reappear_shifted(TrackerConfig(lost_box_buffer=0.3, lost_match_cost_threshold=0.7))
    assert ids[13:] == [[1]] * 7
    without = _reappear_shifted(TrackerConfig(lost_box_buffer=0.0, min_hits_while_lost=0))
    assert without[13] == [] and without[15:] == [[2]] * 5


def test_new_ids_only_for_confident_detections_that_repeat():
    tracker = PoseTracker(TrackerConfig(min_hits=2))
    tracker.update(frame(0, [box_at(50, 50)]))
    # a one-frame confident false alarm never gets an id
    out = tracker.update(frame(1, [box_at(50, 50), box_at(300, 300)]))
    assert out.track_ids.tolist() == [1]
    out = tracker.update(frame(2, [box_at(50, 50)]))
    assert tracker.num_ids == 1
    # a new animal that stays gets an id on its second frame
    out = tracker.update(frame(3, [box_at(50, 50), box_at(200, 200)]))
    assert out.track_ids.tolist() == [1]
    out = tracker.update(frame(4, [box_at(50, 50), box_at(200, 200)]))
    assert out.track_ids.tolist() == [1, 2]


def test_keypoints_resolve_an_ambiguous_overlap():
    """Two animals with the same box; keypoints tell them apart when they swap places."""
    sigmas = np.full(3, 0.1)
    kp_a = np.array([[10.0, 10.0], [20.0, 10.0], [30.0, 10.0]])
    kp_b = np.array([[10.0, 40.0], [20.0, 40.0], [30.0, 40.0]])
    box = [0, 0, 50, 50]
    tracker = PoseTracker(TrackerConfig(oks_weight=0.9, min_common_keypoints=1), sigmas=sigmas)
    tracker.update(frame(0, [box, box], keypoints=np.stack([kp_a, kp_b])))
    out = tracker.update(frame(1, [box, box], keypoints=np.stack([kp_b, kp_a])))
    # detection 0 now carries b's keypoints -> id 2
    by_kp_y = {float(k[0, 1]): int(t) for k, t in zip(out.keypoints, out.track_ids)}
    assert by_kp_y == {10.0: 1, 40.0: 2}


def test_predict_only_moves_boxes_with_the_learned_velocity():
    tracker = PoseTracker(TrackerConfig())
    for f in range(10):
        tracker.update(frame(f, [box_at(100 + 4 * f, 50)]))
    out = tracker.predict_only(10)
    assert out.track_ids.tolist() == [1]
    cx = out.boxes_xyxy[0, [0, 2]].mean()
    assert abs(cx - 140) < 2.0


def test_reset_restarts_ids():
    tracker = PoseTracker(TrackerConfig())
    tracker.update(frame(0, [box_at(10, 10)]))
    tracker.reset()
    assert tracker.update(frame(0, [box_at(300, 300)])).track_ids.tolist() == [1]


def test_empty_frames_give_empty_instances():
    tracker = PoseTracker(TrackerConfig())
    out = tracker.update(Instances.empty(frame_index=3))
    assert len(out) == 0 and out.frame_index == 3


def test_new_animal_gets_an_id_when_detection_runs_every_third_frame():
    tracker = PoseTracker(TrackerConfig(min_hits=2))
    ids = set()
    for f in range(12):
        if f % 3 == 0:
            boxes = [box_at(50, 50)] + ([box_at(200, 200)] if f >= 3 else [])
            out = tracker.update(frame(f, boxes))
        else:
            out = tracker.predict_only(f)
        ids.update(out.track_ids.tolist())
    assert ids == {1, 2}


def test_poses_that_appear_mid_video_keep_the_ids():
    sigmas = np.full(3, 0.1)
    tracker = PoseTracker(TrackerConfig(), sigmas=sigmas)
    assert tracker.update(frame(0, [box_at(50, 50)])).track_ids.tolist() == [1]
    kp = np.array([[[40.0, 45.0], [50.0, 50.0], [60.0, 55.0]]])
    out = tracker.update(frame(1, [box_at(51, 50)], keypoints=kp))
    assert out.track_ids.tolist() == [1] and out.keypoints.shape == (1, 3, 2)
    out = tracker.update(frame(2, [box_at(52, 50)], keypoints=kp + 1))
    assert out.track_ids.tolist() == [1]


def _velocity_after_refound(mode):
    """x velocity (px/frame) a track predicts after it is found again 30 px on, 6 frames later."""
    tracker = PoseTracker(TrackerConfig(refound_velocity=mode, lost_box_buffer=1.0))
    for f in range(10):
        tracker.update(frame(f, [box_at(100 + 5 * f, 80)]))    # 5 px/frame
    for f in range(10, 15):
        tracker.update(frame(f, []))
    tracker.update(frame(15, [box_at(175, 80)]))           # 30 px on since frame 9 (6 frames): 5 px/frame
    before = tracker.predict_only(16).boxes_xyxy[0, 0]
    after = tracker.predict_only(17).boxes_xyxy[0, 0]
    return float(after - before)


def test_a_refound_track_restarts_its_motion_as_configured():
    import pytest

    assert _velocity_after_refound("reset") == pytest.approx(0.0, abs=1e-6)
    assert _velocity_after_refound("gap") == pytest.approx(5.0, abs=1e-3)
    # keep: the long-lost track stood still (lost_motion_frames), the update gives part of the jump
    assert 0.0 < abs(_velocity_after_refound("keep")) and _velocity_after_refound("keep") != pytest.approx(5.0)


def test_a_new_animal_waits_longer_for_an_id_while_another_is_lost():
    def first_output_frame(config):
        tracker = PoseTracker(config)
        for f in range(5):
            tracker.update(frame(f, [box_at(50, 50)]))            # one animal, tracked
        for f in range(5, 20):                                     # it hides; another shows up far away
            out = tracker.update(frame(f, [box_at(300, 200)]))
            if len(out):
                return f
    assert first_output_frame(TrackerConfig(min_hits=3, min_hits_while_lost=0)) == 7
    assert first_output_frame(TrackerConfig(min_hits=3, min_hits_while_lost=6)) == 10


def _crossing_with_one_merged_box(config, merged_at=10):
    """Two animals side by side drifting together; on ``merged_at`` the detector gives one box
    around both (their union). Returns each frame's output."""
    tracker = PoseTracker(config)
    outs = []
    for f in range(16):
        a, b = box_at(100 + 2 * f, 100), box_at(160 - 2 * f, 110)
        boxes = [a, b]
        if f == merged_at:
            boxes = [[min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]]
        outs.append(tracker.update(frame(f, boxes)))
    return outs


def test_one_box_around_two_crossing_animals_goes_to_neither_and_both_keep_their_ids():
    outs = _crossing_with_one_merged_box(TrackerConfig(merged_cover=0.75))
    assert ids_by_x(outs[9]) == [1, 2]
    assert len(outs[10]) == 0  # the merged box is neither animal
    assert [ids_by_x(o) for o in outs[11:]] == [[1, 2]] * 5
    # off (the default): one of the two takes the merged box
    outs = _crossing_with_one_merged_box(TrackerConfig())
    assert len(outs[10]) == 1 and outs[10].track_ids[0] in (1, 2)


def test_a_true_box_that_contains_a_smaller_animal_is_still_matched():
    tracker = PoseTracker(TrackerConfig(merged_cover=0.75, min_hits=1))
    for f in range(6):
        big = box_at(100 + f, 100, w=120, h=90)
        small = box_at(100 + f, 100, w=30, h=20)  # inside the big one, which covers both predictions
        out = tracker.update(frame(f, [big, small]))
    assert sorted(out.track_ids.tolist()) == [1, 2] and len(out) == 2

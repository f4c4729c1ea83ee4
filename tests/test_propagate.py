"""Known animals carried through a video: the propagator, its SOT, --init-boxes."""

import json

import cv2
import numpy as np
import pytest
from conftest import SHARED_ASSETS
from test_cli import assert_one_line_error

from aptrack.cli import main
from aptrack.core.boxes import box_iou_xyxy, grown_xyxy
from aptrack.core.errors import ConfigError, DatasetError
from aptrack.core.instances import Instances
from aptrack.io.init_boxes import load_init_boxes
from aptrack.track.config import PropagationConfig
from aptrack.track.propagate import (IdentityPropagator, colour_reacquisitions, crowded_comebacks, fuse_boxes_xyxy,
                                     hidden_behind, keypoint_box_xyxy, match_known, smoothed_reports)

VITTRACK = SHARED_ASSETS / "weights" / "vittrack.onnx"


def test_fused_box_is_the_weighted_mean_in_xyah():
    a, b = [0, 0, 10, 20], [10, 0, 20, 20]  # same size, centres 5 and 15
    np.testing.assert_allclose(fuse_boxes_xyxy([a, b], [1, 1]), [5, 0, 15, 20])
    np.testing.assert_allclose(fuse_boxes_xyxy([a, b], [3, 1]), [2.5, 0, 12.5, 20])
    np.testing.assert_allclose(fuse_boxes_xyxy([a, b], [0, 2]), b)


def test_keypoint_box_keeps_confident_keypoints_and_grows_about_its_centre():
    box = keypoint_box_xyxy(np.array([[0, 0], [10, 20], [99, 99]]), [0.9, 0.9, 0.1], 0.3, 2)
    np.testing.assert_allclose(box, [0, 0, 10, 20])
    assert keypoint_box_xyxy(np.zeros((3, 2)), [0.9, 0.1, 0.1], 0.3, 2) is None
    np.testing.assert_allclose(grown_xyxy([0, 0, 10, 20], 1.2), [-1, -2, 11, 22])
    np.testing.assert_allclose(grown_xyxy([0, 0, 10, 20], [2.0, 1.0]), [-5, 0, 15, 20])


def test_detections_go_to_the_known_box_they_overlap_most_and_never_below_the_iou_floor():
    known = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], float)
    dets = np.array([[101, 101, 111, 111], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    np.testing.assert_array_equal(match_known(known, dets, 0.4), [1, 0])
    np.testing.assert_array_equal(match_known(known, dets[2:], 0.4), [-1, -1])
    np.testing.assert_array_equal(match_known(known, np.zeros((0, 4)), 0.4), [-1, -1])


class ScriptedSot:
    """A single-object tracker that reports a scripted box and score per update."""

    def __init__(self, script):
        self.script = list(script)
        self.inits = []

    def init(self, frame, box_xyxy):
        self.inits.append(np.asarray(box_xyxy, float).copy())

    def update(self, frame):
        box, score = self.script.pop(0)
        return np.asarray(box, float), score


def box_pose(frame, animals):
    """A pose estimator whose keypoints span the middle 80% of each box (score 0.9)."""
    b = animals.boxes_xyxy.astype(np.float64)
    lo, hi = b[:, :2] + 0.1 * (b[:, 2:] - b[:, :2]), b[:, 2:] - 0.1 * (b[:, 2:] - b[:, :2])
    kp = np.stack([lo, hi, np.stack([lo[:, 0], hi[:, 1]], 1), np.stack([hi[:, 0], lo[:, 1]], 1)], axis=1)
    return animals.with_(keypoints=kp, keypoint_scores=np.full(kp.shape[:2], 0.9))


def propagator_with(scripts, **config):
    sots = [ScriptedSot(s) for s in scripts]
    it = iter(sots)
    return IdentityPropagator(lambda: next(it), PropagationConfig(**config)), sots


FRAME = np.zeros((200, 300, 3), np.uint8)


def test_known_animals_keep_their_ids_and_extra_detections_make_no_new_track():
    moving = [([10 + 5 * t, 10, 50 + 5 * t, 50], 0.9) for t in range(1, 6)]
    still = [([200, 100, 240, 160], 0.9)] * 5
    prop, _ = propagator_with([still, moving])  # one SOT per animal, in id order (3, then 7)
    first = Instances([[10, 10, 50, 50], [200, 100, 240, 160]], [1, 1], track_ids=[7, 3])
    started = prop.start(FRAME, first, box_pose)
    np.testing.assert_array_equal(started.track_ids, [3, 7])  # sorted by id
    stranger = [120, 20, 160, 60]
    for t in range(1, 6):
        dets = Instances([moving[t - 1][0], stranger], [0.8, 0.95])
        out = prop.step(FRAME, t, box_pose, dets)
        np.testing.assert_array_equal(out.track_ids, [3, 7])
        moved = out.boxes_xyxy[out.track_ids == 7][0]
        assert box_iou_xyxy(moved[None], np.array([moving[t - 1][0]], float))[0, 0] > 0.8
    assert first.track_ids.tolist() == [7, 3]  # the input was not changed


class DriftingSot(ScriptedSot):
    """A confident SOT that moves 30 px right of where it was last started, every frame."""

    def __init__(self):
        super().__init__([])

    def update(self, frame):
        return self.inits[-1] + [30, 0, 30, 0], 0.9


def test_a_drifting_sot_is_restarted_from_the_pose_corrected_box():
    sot = DriftingSot()
    prop = IdentityPropagator(lambda: sot, PropagationConfig(pose_weight=1.0, detection_weight=4.0,
                                                             reinit_iou=0.5))
    prop.start(FRAME, Instances([[10, 10, 50, 50]], [1], track_ids=[1]), box_pose)
    for t in range(1, 6):  # the detector keeps seeing the animal where it is
        out = prop.step(FRAME, t, box_pose, Instances([[10, 10, 50, 50]], [0.9]))
        assert box_iou_xyxy(out.boxes_xyxy.astype(float), np.array([[10, 10, 50, 50.0]]))[0, 0] > 0.6
    # started once, then restarted on every frame it had drifted, at the corrected box
    assert len(sot.inits) == 1 + 5
    assert box_iou_xyxy(sot.inits[-1][None], np.array([[10, 10, 50, 50.0]]))[0, 0] > 0.6


class GrowingSot(ScriptedSot):
    """A confident SOT whose box doubles its sides about the centre of where it was last started, every frame."""

    def __init__(self):
        super().__init__([])

    def update(self, frame):
        return grown_xyxy(self.inits[-1], 2.0), 0.9


def test_a_sot_grown_far_beyond_the_animal_is_restarted_though_it_still_overlaps_it():
    for reinit_scale, restarts in ((1.5, 5), (3.0, 0)):
        sot = GrowingSot()
        prop = IdentityPropagator(lambda: sot, PropagationConfig(pose_weight=1.0, detection_weight=4.0, reinit_iou=0.1,
                                                                 reinit_scale=reinit_scale, hindsight_frames=0))
        prop.start(FRAME, Instances([[100, 80, 140, 120]], [1], track_ids=[1]), box_pose)
        for t in range(1, 6):  # the detector keeps seeing the animal where it is; the SOT's box overlaps it by 0.25
            prop.step(FRAME, t, box_pose, Instances([[100, 80, 140, 120]], [0.9]))
        assert len(sot.inits) == 1 + restarts


def test_a_hidden_animal_is_not_reported_and_comes_back_under_its_own_id():
    script = [([10, 10, 50, 50], 0.9), ([10, 10, 50, 50], 0.05), ([10, 10, 50, 50], 0.05),
              ([10, 10, 50, 50], 0.8)]
    prop, _ = propagator_with([script])
    prop.start(FRAME, Instances([[10, 10, 50, 50]], [1], track_ids=[5]), box_pose)
    seen = [prop.step(FRAME, t, box_pose, Instances.empty()).track_ids.tolist() for t in range(1, 5)]
    assert seen == [[5], [], [], [5]]


def test_with_the_detector_a_hidden_animal_needs_a_clear_sighting_to_come_back_and_a_seen_one_stays_on_less():
    box = [10, 10, 50, 50]
    script = [(box, s) for s in (0.5, 0.3, 0.5, 0.7, 0.5)]  # SOT scores; visible 0.45, reappear 0.65
    scores_only = {"visible_min_score": 0.45, "reappear_min_score": 0.65, "colour_evidence": 0.0}
    prop, _ = propagator_with([script], **scores_only)
    prop.start(FRAME, Instances([box], [1], track_ids=[5]), box_pose)
    seen = [prop.step(FRAME, t, box_pose, Instances.empty()).track_ids.tolist() for t in range(1, 6)]
    assert seen == [[5], [], [], [5], [5]]
    # without hysteresis (both thresholds equal), or on the SOT alone, the middling 0.5 brings it back
    for config in ({"reappear_min_score": 0.45}, {"use_detector": False}):
        prop, _ = propagator_with([script], **{**scores_only, **config})
        prop.start(FRAME, Instances([box], [1], track_ids=[5]), box_pose)
        seen = [prop.step(FRAME, t, box_pose, None).track_ids.tolist() for t in range(1, 6)]
        assert seen == [[5], [], [5], [5], [5]]


def test_first_frame_animals_without_ids_are_numbered_after_the_given_ones():
    prop = IdentityPropagator(None, PropagationConfig())
    out = prop.start(FRAME, Instances([[0, 0, 5, 5], [10, 10, 20, 20], [30, 30, 40, 40]], [1, 1, 1],
                                      track_ids=[4, -1, -1]))
    assert out.track_ids.tolist() == [4, 5, 6]
    with pytest.raises(ConfigError, match="repeat a track id"):
        prop.start(FRAME, Instances([[0, 0, 5, 5], [10, 10, 20, 20]], [1, 1], track_ids=[2, 2]))


@pytest.mark.parametrize("changes, needle", [
    ({"sot_min_score": 1.5}, "sot_min_score must be in [0, 1]"),
    ({"pose_weight": -1}, "pose_weight must be >= 0"),
    ({"pose_box_growth": 3.0}, "pose_box_growth must lie in"),
    ({"appearance_weight": 1.2}, "appearance_weight must be in [0, 1]"),
    ({"appearance_gate": -2}, "appearance_gate must be in [-1, 1]"),
    ({"look_evidence": -0.1}, "look_evidence must be in [0, 1]"),
    ({"reappear_min_score": 1.5}, "reappear_min_score must be in [0, 1]"),
    ({"reappear_min_score": 0.3}, "reappear_min_score (0.3) must be at least visible_min_score (0.6)"),
    ({"colour_evidence": 1.5}, "colour_evidence must be in [0, 1]"),
    ({"anchor_min_score": 1.5}, "anchor_min_score must be in [0, 1]"),
    ({"hindsight_frames": -1}, "hindsight_frames must be in [0, 64]"),
    ({"reinit_scale": 0.5}, "reinit_scale must be >= 1"),
    ({"flip_nms_iou": 1.5}, "flip_nms_iou must be in [0, 1]"),
    ({"hidden_cover_share": -0.1}, "hidden_cover_share must be in [0, 1]"),
    ({"colour_reacquire_min_score": 1.5}, "colour_reacquire_min_score must be in [0, 1]"),
    ({"colour_reacquire_min_similarity": -0.5}, "colour_reacquire_min_similarity must be in [0, 1]"),
    ({"colour_reacquire_reach": -1}, "colour_reacquire_reach must be >= 0"),
    ({"fade_min_score": 1.5}, "fade_min_score must be in [0, 1]"),
    ({"comeback_max_iou": -0.1}, "comeback_max_iou must be in [0, 1]"),
    ({"min_run_frames": 0}, "min_run_frames must be >= 1, got 0"),
])
def test_propagation_settings_out_of_range_are_refused(changes, needle):
    with pytest.raises(ConfigError) as err:
        PropagationConfig(**changes)
    assert needle in str(err.value)


@pytest.mark.parametrize("name, text", [
    ("boxes.json", json.dumps([{"id": 2, "box_xyxy": [10, 20, 50, 80]}, {"id": 9, "box_xywh": [1, 2, 5, 6]}])),
    ("boxes.json", json.dumps({"animals": [{"id": 2, "box_xyxy": [10, 20, 50, 80]},
                                           {"id": 9, "box_xywh": [1, 2, 5, 6], "category": "mouse"}]})),
    ("boxes.csv", "id,x1,y1,x2,y2\n2,10,20,50,80\n9,1,2,6,8\n"),
])
def test_init_boxes_files_give_ids_and_xyxy_boxes(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    got = load_init_boxes(path, frame_index=4)
    assert got.track_ids.tolist() == [2, 9] and got.frame_index == 4
    np.testing.assert_allclose(got.boxes_xyxy, [[10, 20, 50, 80], [1, 2, 6, 8]])  # xywh [1, 2, 5, 6] -> xyxy


def test_init_boxes_csv_in_xywh_and_without_ids_is_numbered_in_file_order(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("x,y,w,h\n10,20,30,40\n1,2,3,4\n")
    got = load_init_boxes(path)
    assert got.track_ids.tolist() == [1, 2]
    np.testing.assert_allclose(got.boxes_xyxy, [[10, 20, 40, 60], [1, 2, 4, 6]])


@pytest.mark.parametrize("name, text, needle", [
    ("b.json", "[{\"id\": 1, \"box_xyxy\": [0, 0, NaN, 5]}]", "animal 1: the box must be 4 finite"),
    ("b.json", "[{\"id\": 1, \"box_xyxy\": [5, 5, 1, 9]}]", "animal 1: the box [5, 5, 1, 9] has no area"),
    ("b.json", "[{\"id\": 1, \"box_xyxy\": [0, 0, 4, 4]}, {\"id\": 1, \"box_xyxy\": [0, 0, 4, 4]}]",
     "an id is used twice"),
    ("b.json", "[{\"id\": 1.5, \"box_xyxy\": [0, 0, 4, 4]}]", "id must be a positive integer"),
    ("b.json", "{\"x\": 1}", "expected a list"),
    ("b.json", "[]", "no animals"),
    ("b.csv", "a,b\n1,2\n", "needs the columns"),
])
def test_bad_init_boxes_files_name_the_problem(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError) as err:
        load_init_boxes(path)
    assert needle in str(err.value)


@pytest.fixture
def vittrack():
    if not VITTRACK.is_file():
        pytest.skip(f"shared assets not found at {SHARED_ASSETS} (needs weights/vittrack.onnx)")
    return VITTRACK


def textured_frames(n, size=(240, 180)):
    """A textured patch moving 4 px right and 2 px down per frame over noise; its boxes xyxy."""
    rng = np.random.default_rng(0)
    w, h = size
    patch = rng.integers(0, 255, (40, 50, 3), np.uint8)
    patch = cv2.GaussianBlur(patch, (5, 5), 0)
    frames, boxes = [], []
    for t in range(n):
        img = cv2.GaussianBlur(rng.integers(90, 140, (h, w, 3), np.uint8), (9, 9), 0)
        x, y = 30 + 4 * t, 40 + 2 * t
        img[y:y + 40, x:x + 50] = patch
        frames.append(img)
        boxes.append([x, y, x + 50, y + 40])
    return frames, np.array(boxes, float)


def test_vittrack_follows_a_moving_textured_patch(vittrack):
    from aptrack.track.sot import VitSingleObjectTracker

    frames, boxes = textured_frames(12)
    sot = VitSingleObjectTracker(vittrack)
    sot.init(frames[0], boxes[0])
    for frame, box in zip(frames[1:], boxes[1:]):
        got, score = sot.update(frame)
        assert 0.0 <= score <= 1.0
    assert box_iou_xyxy(got[None], box[None])[0, 0] > 0.6 and score > 0.3


def test_a_sot_file_that_is_not_a_network_is_a_weights_error(tmp_path):
    from aptrack.core.errors import WeightsError
    from aptrack.track.sot import VitSingleObjectTracker

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a network")
    with pytest.raises(WeightsError, match="cannot load the single-object tracker"):
        VitSingleObjectTracker(bad)


def test_run_with_init_boxes_follows_exactly_the_given_animals(mirror, vittrack, tmp_path, capsys):
    frames, boxes = textured_frames(10)
    video = tmp_path / "patch.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, frames[0].shape[1::-1])
    for f in frames:
        writer.write(f)
    writer.release()
    init = tmp_path / "init.json"
    init.write_text(json.dumps([{"id": 4, "box_xyxy": boxes[0].tolist()}]))
    code = main(["run", str(video), "-o", str(tmp_path / "out"), "--init-boxes", str(init), "--pose", "none",
                 "--no-video", "--quiet", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    anns = json.loads((tmp_path / "out" / "patch.json").read_text())["annotations"]
    assert {a["track_id"] for a in anns} == {4}
    assert len(anns) >= 8
    last = max(anns, key=lambda a: a["frame"])
    x, y, w, h = last["bbox"]
    assert box_iou_xyxy(np.array([[x, y, x + w, y + h]]), boxes[last["frame"]][None])[0, 0] > 0.5


def test_run_with_a_bad_init_boxes_file_is_one_clear_line(tmp_path, capsys):
    video = tmp_path / "v.avi"
    from conftest import write_video
    write_video(video, 3)
    code = main(["run", str(video), "-o", str(tmp_path / "out"), "--init-boxes", str(tmp_path / "none.json")])
    assert_one_line_error(code, capsys.readouterr().err, "init-boxes file not found")


def test_init_boxes_must_give_as_many_animals_as_animals_says(tmp_path, capsys):
    video = tmp_path / "v.avi"
    from conftest import write_video
    write_video(video, 3)
    init = tmp_path / "init.json"
    init.write_text(json.dumps([{"id": 1, "box_xyxy": [1, 1, 10, 10]}, {"id": 2, "box_xyxy": [20, 1, 30, 10]}]))
    code = main(["run", str(video), "-o", str(tmp_path / "out"), "--init-boxes", str(init), "--animals", "3"])
    assert_one_line_error(code, capsys.readouterr().err, "--animals 3 but --init-boxes gives 2 animals")


def test_an_animal_takes_a_detection_through_whichever_of_its_guessed_boxes_overlaps_it():
    sot_guess = np.array([[100, 0, 140, 40]], float)   # drifted away
    motion_guess = np.array([[0, 0, 40, 40]], float)   # still on the animal
    det = np.array([[2, 0, 42, 40]], float)
    assert match_known(sot_guess, det, 0.4).tolist() == [-1]
    assert match_known([motion_guess, sot_guess], det, 0.4).tolist() == [0]


def textured(frame, box, seed):
    """``frame`` (a copy) with a random texture of its own ``seed`` painted into ``box``."""
    out = frame.copy()
    x1, y1, x2, y2 = box
    out[y1:y2, x1:x2] = np.random.default_rng(seed).integers(0, 255, (y2 - y1, x2 - x1, 3), dtype=np.uint8)
    return out


def test_an_animal_whose_sot_followed_another_takes_back_a_leftover_detection_that_looks_like_it():
    from aptrack.track.appearance import AppearanceEmbedder

    a_box, b_box, b_moved = [10, 10, 50, 50], [100, 10, 140, 50], [150, 10, 190, 50]
    first = textured(textured(FRAME, a_box, 1), b_box, 2)
    later = textured(textured(FRAME, a_box, 1), b_moved, 2)
    # both SOTs sit on animal A in frame 1: B's followed it while B jumped away
    scripts = [[(a_box, 0.9)], [(a_box, 0.9)]]
    animals = Instances([a_box, b_box], [1, 1], track_ids=[1, 2])
    dets = Instances([a_box, b_moved], [0.9, 0.9])
    boxes_of_b = {}
    for embedder in (None, AppearanceEmbedder()):
        prop, _ = propagator_with(scripts)
        prop.embedder = embedder
        prop.start(first, animals, box_pose)
        prop.step(later, 1, box_pose, dets)
        carried = prop.carried
        boxes_of_b[embedder is not None] = carried.boxes_xyxy[carried.track_ids == 2][0].astype(float)
    iou = lambda box: box_iou_xyxy(box[None], np.array([b_moved], float))[0, 0]  # noqa: E731
    assert iou(boxes_of_b[True]) > 0.8   # re-acquired by look
    assert iou(boxes_of_b[False]) < 0.2  # without looks it stays lost


def test_the_step_evidence_says_which_source_had_an_animal_whose_sot_followed_another():
    from aptrack.track.appearance import AppearanceEmbedder

    a_box, b_box, b_moved = [10, 10, 50, 50], [100, 10, 140, 50], [150, 10, 190, 50]
    first = textured(textured(FRAME, a_box, 1), b_box, 2)
    later = textured(textured(FRAME, a_box, 1), b_moved, 2)
    prop, _ = propagator_with([[(a_box, 0.3)], [(a_box, 0.9)]])  # SOTs in id order: B's (id 1) sits on A
    prop.embedder = AppearanceEmbedder()
    prop.start(first, Instances([a_box, b_box], [1, 1], track_ids=[2, 1]), box_pose)
    assert prop.evidence is None  # nothing propagated yet
    dets = Instances([b_moved, a_box], [0.9, 0.9])
    prop.step(later, 1, box_pose, dets)
    ev = prop.evidence
    assert ev.ids.tolist() == [1, 2]  # id order: B (id 1), then A
    np.testing.assert_allclose(ev.sot_xyxy, [a_box, a_box])
    np.testing.assert_allclose(ev.sot_scores, [0.3, 0.9])
    np.testing.assert_allclose(ev.predicted_xyxy[0], b_box, atol=1e-6)  # still, as on its first frame
    np.testing.assert_allclose(ev.detections_xyxy, [b_moved, a_box])
    assert ev.detection_rows.tolist() == [0, 1] and ev.reacquired.tolist() == [True, False]
    assert box_iou_xyxy(ev.prior_xyxy[:1], np.array([b_moved], float))[0, 0] > 0.99  # restarted on its detection


def test_a_leftover_detection_that_looks_like_no_known_animal_is_not_taken():
    from aptrack.track.appearance import AppearanceEmbedder

    a_box, b_box, stranger = [10, 10, 50, 50], [100, 10, 140, 50], [150, 10, 190, 50]
    first = textured(textured(FRAME, a_box, 1), b_box, 2)
    later = textured(textured(FRAME, a_box, 1), stranger, 3)  # B hidden, another animal elsewhere
    prop, _ = propagator_with([[(a_box, 0.9)], [(b_box, 0.05)]])
    prop.embedder = AppearanceEmbedder()
    prop.start(first, Instances([a_box, b_box], [1, 1], track_ids=[1, 2]), box_pose)
    out = prop.step(later, 1, box_pose, Instances([a_box, stranger], [0.9, 0.9]))
    assert out.track_ids.tolist() == [1]  # B is not reported on the stranger
    b = prop.carried.boxes_xyxy[prop.carried.track_ids == 2][0].astype(float)
    assert box_iou_xyxy(b[None], np.array([stranger], float))[0, 0] < 0.2


def test_hidden_animals_stay_carried_with_the_low_score_that_kept_them_unreported():
    script = [([10, 10, 50, 50], 0.9), ([10, 10, 50, 50], 0.05)]
    prop, _ = propagator_with([script])
    prop.start(FRAME, Instances([[10, 10, 50, 50]], [1], track_ids=[5]), box_pose)
    assert prop.step(FRAME, 1, box_pose, Instances.empty()).track_ids.tolist() == [5]
    assert prop.step(FRAME, 2, box_pose, Instances.empty()).track_ids.tolist() == []
    assert prop.carried.track_ids.tolist() == [5]
    assert prop.carried.scores[0] < PropagationConfig().visible_min_score


def front_pose(frame, animals):
    """A pose estimator that finds the front animal (the first box's pose) in every overlapping crop."""
    posed = box_pose(frame, animals)
    kp = posed.keypoints.copy()
    for i in range(1, len(kp)):
        if box_iou_xyxy(animals.boxes_xyxy[:1].astype(float), animals.boxes_xyxy[i:i + 1].astype(float))[0, 0] > 0.3:
            kp[i] = kp[0]
    return posed.with_(keypoints=kp)


def test_an_animal_whose_pose_repeats_a_better_seen_ones_is_ranked_down_but_still_reported():
    from aptrack.core.layout import load_layout

    sigmas = load_layout("ap10k").sigmas[:4]
    front, behind = [([10, 10, 50, 50], 0.9)] * 2, [([14, 12, 54, 52], 0.6)] * 2
    for oks_limit, ranked_down in ((0.7, True), (1.0, False)):
        sots = iter([ScriptedSot(front), ScriptedSot(behind)])
        prop = IdentityPropagator(lambda: next(sots), PropagationConfig(duplicate_pose_oks=oks_limit,
                                                                        colour_evidence=0.0), sigmas=sigmas)
        prop.start(FRAME, Instances([[10, 10, 50, 50], [14, 12, 54, 52]], [1, 1], track_ids=[1, 2]), front_pose)
        out = prop.step(FRAME, 1, front_pose, Instances.empty())
        assert out.track_ids.tolist() == [1, 2]  # what is reported does not change
        seen_front, seen_behind = 0.9, 0.6  # the SOTs' scores, no detection
        assert out.scores[0] == pytest.approx(seen_front)
        if ranked_down:  # the same pose as the better-seen animal: OKS 1, so its score goes to 0
            assert out.scores[1] < 0.05 * seen_behind
        else:
            assert out.scores[1] == pytest.approx(seen_behind)


def test_an_animal_without_a_detection_mostly_inside_a_reported_one_with_a_detection_is_hidden_behind_it():
    boxes = np.array([[0, 0, 100, 100],    # 0: the front animal, with a detection
                      [20, 20, 80, 80],    # 1: wholly inside 0, no detection -> hidden
                      [60, 0, 160, 100],   # 2: 40% inside 0, no detection -> not hidden at 0.5
                      [10, 10, 90, 90],    # 3: inside 0 but with a detection of its own -> not hidden
                      [300, 0, 400, 100]], float)  # 4: far away
    has_detection = np.array([True, False, False, True, False])
    reported = np.ones(5, bool)
    assert hidden_behind(boxes, has_detection, reported, 0.5).tolist() == [False, True, False, False, False]
    assert hidden_behind(boxes, has_detection, reported, 0.4).tolist() == [False, True, True, False, False]
    assert not hidden_behind(boxes, has_detection, reported, 1.0).any()  # off
    # a front animal that is not reported itself hides no one; nor does one without a detection
    assert not hidden_behind(boxes, has_detection, np.array([False, True, True, False, True]), 0.5).any()
    assert not hidden_behind(boxes, np.zeros(5, bool), reported, 0.5).any()
    assert hidden_behind(np.zeros((0, 4)), np.zeros(0, bool), np.zeros(0, bool), 0.5).shape == (0,)


def test_an_animal_whose_sot_sits_on_the_detected_animal_in_front_of_it_is_not_reported():
    front_box, behind_box = [10, 10, 60, 60], [20, 15, 55, 55]  # the one behind: all inside the front box
    for share, reported in ((0.5, [1]), (1.0, [1, 2])):
        sots = iter([ScriptedSot([(front_box, 0.9)]), ScriptedSot([(behind_box, 0.9)])])
        prop = IdentityPropagator(lambda: next(sots), PropagationConfig(hidden_cover_share=share, colour_evidence=0.0,
                                                                        hindsight_frames=0))
        prop.start(FRAME, Instances([front_box, behind_box], [1, 1], track_ids=[1, 2]), box_pose)
        out = prop.step(FRAME, 1, box_pose, Instances([front_box], [0.9]))  # one detection: the front animal
        assert out.track_ids.tolist() == reported
        assert prop.carried.track_ids.tolist() == [1, 2]  # the hidden one is still carried


def test_a_detection_between_two_animals_goes_to_the_one_it_looks_like():
    a, b = np.array([[0, 0, 40, 40]], float), np.array([[10, 0, 50, 40]], float)
    det = np.array([[8, 0, 48, 40]], float)  # IoU 0.67 with a, 0.90 with b
    looks = np.array([[0.9], [-0.2]])         # but it looks like a
    known = np.concatenate([a, b])
    assert match_known(known, det, 0.4).tolist() == [-1, 0]
    assert match_known(known, det, 0.4, looks, appearance_weight=0.3).tolist() == [0, -1]
    # the gate: a pair that looks less alike than it is never matched, however well it overlaps
    assert match_known(b, det, 0.4, looks[1:], appearance_weight=0.3, appearance_gate=0.0).tolist() == [-1]
    assert match_known(b, det, 0.4, looks[1:], appearance_weight=0.3).tolist() == [0]


def test_a_matched_detection_that_looks_like_its_animal_raises_how_well_the_animal_is_seen():
    from aptrack.track.appearance import AppearanceEmbedder

    a_box, b_box = [10, 10, 50, 50], [100, 10, 140, 50]
    first = textured(textured(FRAME, a_box, 1), b_box, 2)
    later = textured(textured(FRAME, a_box, 1), b_box, 3)  # B's box now shows something else
    scores = {}
    for evidence in (0.0, 1.0):
        prop, _ = propagator_with([[(a_box, 0.2)], [(b_box, 0.2)]], look_evidence=evidence, colour_evidence=0.0)
        prop.embedder = AppearanceEmbedder()
        prop.start(first, Instances([a_box, b_box], [1, 1], track_ids=[1, 2]), box_pose)
        prop.step(later, 1, box_pose, Instances([a_box, b_box], [0.3, 0.3]))
        scores[evidence] = prop.carried.scores.astype(float)
    seen_without_look = 1 - (1 - 0.2) * (1 - 0.3)
    np.testing.assert_allclose(scores[0.0], [seen_without_look] * 2, atol=1e-6)
    assert scores[1.0][0] > 0.95                                   # A's detection is A's first-frame look
    assert scores[1.0][1] < scores[1.0][0] - 0.3                    # B's shows another texture
    assert scores[1.0][1] >= seen_without_look - 1e-6               # a look never lowers the evidence


def painted(frame, box, bgr_halves):
    """``frame`` (a copy) with ``box`` painted in two colours, left half and right half (BGR)."""
    out = frame.copy()
    x1, y1, x2, y2 = box
    mid = (x1 + x2) // 2
    out[y1:y2, x1:mid], out[y1:y2, mid:x2] = bgr_halves
    return out


def test_an_animal_whose_box_shows_other_colours_than_its_first_frame_box_is_seen_less_and_not_reported():
    box = [10, 10, 50, 50]
    first = painted(FRAME, box, [(30, 60, 200), (40, 160, 60)])     # a red and green animal
    covered = painted(FRAME, box, [(200, 80, 20), (200, 80, 20)])   # a blue animal in front of it
    part = painted(FRAME, box, [(30, 60, 200), (200, 80, 20)])      # half of it out from behind the blue one
    frames = [first, covered, part, first]
    sot_score = 0.7                                                 # the SOT follows whatever is in the box
    outcomes = {}
    for evidence in (0.0, 0.5):
        prop, _ = propagator_with([[(box, sot_score)] * len(frames)], colour_evidence=evidence)
        prop.start(first, Instances([box], [1], track_ids=[4]), box_pose)
        reported, scores = [], []
        for t, frame in enumerate(frames, 1):
            reported.append(prop.step(frame, t, box_pose, Instances.empty()).track_ids.tolist())
            scores.append(float(prop.carried.scores[0]))
        outcomes[evidence] = (reported, scores)
    # on the SOT's word alone the animal is always seen; its colours say when it is not
    assert outcomes[0.0] == ([[4]] * 4, pytest.approx([sot_score] * 4))
    reported, (full, hidden, half, back) = outcomes[0.5]
    assert reported == [[4], [], [], [4]]      # half in view is not yet enough to come back (reappear_min_score)
    assert full == back == pytest.approx(0.5 * sot_score + 0.5, abs=1e-4)
    assert hidden < 0.5 * sot_score + 0.05 < half < full   # the cover's colours: no correlation; half: some


def test_in_a_grey_video_the_grey_levels_of_the_box_stand_for_its_colours():
    box = [10, 10, 50, 50]
    animal = painted(FRAME, box, [(90, 90, 90), (160, 160, 160)])
    cover = painted(FRAME, box, [(20, 20, 20), (20, 20, 20)])  # a dark animal in front of it
    prop, _ = propagator_with([[(box, 0.7)] * 3])
    prop.start(animal, Instances([box], [1], track_ids=[4]), box_pose)
    reported, scores = [], []
    for t, frame in enumerate([animal, cover, animal], 1):
        reported.append(prop.step(frame, t, box_pose, Instances.empty()).track_ids.tolist())
        scores.append(float(prop.carried.scores[0]))
    assert reported == [[4], [], [4]]
    assert scores[0] == scores[2] == pytest.approx(0.5 * 0.7 + 0.5, abs=1e-4)
    assert scores[1] < 0.5 * 0.7 + 0.05


def found_again_script():
    """Frames 1-4: the forward SOT loses the animal (score 0.05); frame 5: it and a detection find it at
    ``FOUND``. The backward SOT, started there, goes back one step of 10 px left per frame."""
    lost = [([200, 100, 240, 140], 0.05)] * 4
    backward = [([90 - 10 * k, 10, 130 - 10 * k, 50], 0.8) for k in range(5)]
    return [lost + [(FOUND, 0.9)], backward]


FOUND = [100, 10, 140, 50]


def run_found_again(backward=None, **config):
    """The propagator after frames 0-5 of :func:`found_again_script` (``backward``: another backward SOT script)."""
    forward, default_backward = found_again_script()
    prop, sots = propagator_with([forward, backward or default_backward], colour_evidence=0.0, **config)
    prop.start(FRAME, Instances([[10, 10, 50, 50]], [1], track_ids=[4]), box_pose)
    for t in range(1, 5):
        prop.step(FRAME, t, box_pose, Instances.empty())
        assert prop.revisions == ()
    prop.step(FRAME, 5, box_pose, Instances([FOUND], [0.9]))
    return prop, sots


def test_an_animal_found_again_revises_the_later_half_of_its_lost_frames_from_a_backward_sot():
    prop, sots = run_found_again(hindsight_frames=4)
    # lost since frame 0, found on 5: frames 3 and 4 (nearer 5 than 0) are revised, newest first
    assert [r.index for r in prop.revisions] == [4, 3]
    np.testing.assert_allclose(sots[1].inits, prop.carried.boxes_xyxy, atol=1e-4)  # started on the found box
    assert box_iou_xyxy(sots[1].inits[0][None], np.array([FOUND], float))[0, 0] > 0.75  # motion pulls it back a bit
    for r, box in zip(prop.revisions, ([90, 10, 130, 50], [80, 10, 120, 50])):
        assert r.carried.track_ids.tolist() == [4] and r.visible.tolist() == [True]
        np.testing.assert_allclose(r.carried.boxes_xyxy[0], box, atol=1e-3)
        assert r.carried.scores[0] == pytest.approx(0.8)  # the backward SOT's score: it sees the animal
        # the pose is estimated again, in the revised box
        np.testing.assert_allclose(r.carried.keypoints[0, 0], np.array(box[:2]) + 4, atol=1e-3)


def test_hindsight_reaches_back_at_most_hindsight_frames_and_not_at_all_when_off():
    prop, sots = run_found_again(hindsight_frames=1)
    assert [r.index for r in prop.revisions] == [4]
    assert prop.lag == 1
    prop, sots = run_found_again(hindsight_frames=0)
    assert prop.revisions == () and prop.lag == 0 and sots[1].inits == []  # no backward SOT was made


def test_a_backward_box_the_sot_barely_sees_leaves_the_animal_hidden():
    prop, _ = run_found_again([([90, 10, 130, 50], 0.8), ([80, 10, 120, 50], 0.3)])  # sure one frame back, not two
    assert [(r.index, r.visible.tolist()) for r in prop.revisions] == [(4, [True]), (3, [False])]


def test_an_animal_coming_back_onto_the_box_of_one_that_stayed_in_view_stays_hidden():
    boxes = np.array([[0, 0, 10, 10],     # 0: reported before and now
                      [0, 0, 10, 9],      # 1: back now, IoU 0.9 with 0
                      [5, 0, 15, 10],     # 2: back now, IoU 1/3 with 0
                      [40, 0, 50, 10],    # 3: back now, far away
                      [0, 0, 10, 10],     # 4: reported before, not now
                      [1, 0, 11, 10]],    # 5: reported before and now (IoU 0.82 with 0)
                     float)
    before = np.array([1, 0, 0, 0, 1, 1], bool)
    now = np.array([1, 1, 1, 1, 0, 1], bool)
    assert crowded_comebacks(boxes, before, now, 0.7).tolist() == [False, True, False, False, False, False]
    assert crowded_comebacks(boxes, before, now, 0.3).tolist() == [False, True, True, False, False, False]
    assert not crowded_comebacks(boxes, before, now, 1.0).any()                      # off
    assert not crowded_comebacks(boxes, np.zeros(6, bool), now, 0.7).any()           # nobody stayed in view
    assert crowded_comebacks(np.zeros((0, 4)), [], [], 0.7).shape == (0,)


@pytest.mark.parametrize("max_iou, back", [(1.0, True), (0.7, False)])
def test_a_hidden_animal_taking_a_second_box_of_the_one_in_front_does_not_come_back_there(max_iou, back):
    a_box, b_box = [20, 20, 60, 70], [60, 20, 100, 70]  # B beside A, then behind it
    twin = [22, 20, 62, 70]  # a second detection of A, where B's SOT followed A
    prop, _ = propagator_with([[(a_box, 0.9)] * 2, [(b_box, 0.05), (twin, 0.9)]], colour_evidence=0.0,
                              hindsight_frames=0, comeback_max_iou=max_iou)
    prop.start(FRAME, Instances([a_box, b_box], [1, 1], track_ids=[1, 2]), box_pose)
    assert prop.step(FRAME, 1, box_pose, Instances([a_box], [0.9])).track_ids.tolist() == [1]  # B lost
    out = prop.step(FRAME, 2, box_pose, Instances([a_box, twin], [0.9, 0.85]))
    assert prop.evidence.detection_rows.tolist() == [0, 1]  # B took the twin
    assert out.track_ids.tolist() == ([1, 2] if back else [1])


def test_smoothed_reports_drop_the_frame_before_an_animal_falls_hidden_when_it_scored_little():
    visible = np.array([[1, 1, 1],
                        [1, 1, 1],
                        [0, 0, 1]], bool)  # animals 0 and 1 fall hidden in the last frame, 2 stays
    scores = np.array([[0.9, 0.9, 0.9],
                       [0.65, 0.75, 0.5],
                       [0.2, 0.2, 0.9]])
    out = smoothed_reports(visible, scores, fade_min_score=0.7, min_run_frames=1)
    assert out.tolist() == [[True, True, True],
                            [False, True, True],   # 0.65 < 0.7 goes; 0.75 stays; animal 2 is still seen
                            [False, False, True]]
    assert smoothed_reports(visible, scores, 0.0, 1).tolist() == visible.tolist()  # off
    assert visible[1].all()  # the input is not changed


def test_smoothed_reports_drop_a_short_run_between_hidden_frames_and_keep_longer_and_open_runs():
    visible = np.array([[0, 0, 1, 0],
                        [1, 0, 1, 1],
                        [1, 1, 1, 1],
                        [0, 1, 0, 1],
                        [0, 0, 0, 0]], bool)
    out = smoothed_reports(visible, np.ones(visible.shape), fade_min_score=0.0, min_run_frames=3)
    assert out[:, 0].tolist() == [False] * 5                           # two frames between hidden ones: gone
    assert out[:, 1].tolist() == [False, False, False, False, False]   # so is this one (frames 2-3)
    assert out[:, 2].tolist() == [True, True, True, False, False]      # began before the window: kept
    assert out[:, 3].tolist() == [False, True, True, True, False]      # three frames: kept
    assert smoothed_reports(visible, np.ones(visible.shape), 0.0, 2)[:, 0].tolist() == visible[:, 0].tolist()


@pytest.mark.parametrize("sot_scores, fade, min_run, reported", [
    ([0.9, 0.9, 0.65, 0.3, 0.3], 0.0, 1, [[4], [4], [4], [4], [], []]),   # frame 3 by step 8's hysteresis
    ([0.9, 0.9, 0.65, 0.3, 0.3], 0.7, 1, [[4], [4], [4], [], [], []]),    # ... taken back from frame 4
    ([0.3, 0.9, 0.9, 0.3, 0.3], 0.0, 1, [[4], [], [4], [4], [], []]),
    ([0.3, 0.9, 0.9, 0.3, 0.3], 0.0, 3, [[4], [], [], [], [], []]),       # two frames out of cover: dropped
    ([0.3, 0.9, 0.9, 0.9, 0.3], 0.0, 3, [[4], [], [4], [4], [4], []]),    # three: kept
])
def test_the_frame_loop_yields_the_reports_of_step_10(sot_scores, fade, min_run, reported):
    from aptrack.runner import iter_steps

    box = [10, 10, 50, 50]
    prop, _ = propagator_with([[(box, s) for s in sot_scores]], colour_evidence=0.0, hindsight_frames=4,
                              fade_min_score=fade, min_run_frames=min_run)
    detections = {t: Instances.empty() for t in range(1, 6)}
    first = Instances([box], [1], track_ids=[4])
    steps = list(iter_steps(KnownOnlyPipeline(prop, detections), ((t, FRAME) for t in range(6)), known=first))
    assert [s.index for s in steps] == list(range(6))
    assert [s.tracked.track_ids.tolist() for s in steps] == reported


class KnownOnlyPipeline:
    """The parts of :class:`aptrack.pipeline.Pipeline` that :class:`aptrack.runner.FrameLoop` uses to
    carry known animals, around a propagator and a scripted detection per frame."""

    def __init__(self, propagator, detections):
        from types import SimpleNamespace

        from aptrack.pipeline import StageTimer

        self.propagator, self.detections = propagator, detections
        self.interpolation = SimpleNamespace(max_gap=0)
        self.timer = StageTimer()
        self.last_detections = None

    def track_known(self, frame, animals):
        return self.propagator.start(frame, animals, box_pose)

    def __call__(self, frame, index, boxes=None):
        return self.propagator.step(frame, index, box_pose, self.detections[index])


def test_the_frame_loop_holds_known_animals_back_by_the_lag_and_yields_them_revised():
    from aptrack.runner import iter_steps

    prop, _ = propagator_with(found_again_script(), colour_evidence=0.0, hindsight_frames=2)
    detections = {t: Instances.empty() for t in range(1, 5)} | {5: Instances([FOUND], [0.9])}
    first = Instances([[10, 10, 50, 50]], [1], track_ids=[4])
    steps = list(iter_steps(KnownOnlyPipeline(prop, detections), ((t, FRAME) for t in range(6)), known=first))
    assert [s.index for s in steps] == list(range(6))  # every frame once, in order
    assert [s.tracked.track_ids.tolist() for s in steps] == [[4], [], [], [4], [4], [4]]  # 3 and 4 revised
    np.testing.assert_allclose(steps[4].tracked.boxes_xyxy[0], [90, 10, 130, 50], atol=1e-3)  # revised
    np.testing.assert_allclose(steps[3].carried.boxes_xyxy[0], [80, 10, 120, 50], atol=1e-3)
    assert box_iou_xyxy(steps[2].carried.boxes_xyxy[:1].astype(float), np.array([FOUND], float))[0, 0] == 0


class RecordingDetector:
    """Finds nothing; keeps every frame it was shown."""

    def __init__(self):
        self.frames = []

    def __call__(self, frame, frame_index):
        self.frames.append(frame.copy())
        return Instances.empty(frame_index=frame_index)


@pytest.mark.parametrize("flip, views", [(True, 2), (False, 1)])
def test_known_animals_mode_runs_the_detector_on_the_mirrored_frame_too_when_asked(flip, views):
    from aptrack.pipeline import Pipeline
    from aptrack.track import PoseTracker

    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:, :10] = 200  # tells the mirrored frame from the plain one
    detector = RecordingDetector()
    pipe = Pipeline(detector, PoseTracker(), propagation=PropagationConfig(sot_weights=None, detector_flip_test=flip))
    pipe.track_known(frame, Instances([[20, 10, 40, 30]], [1], track_ids=[1]))
    pipe(frame, 1)
    assert len(detector.frames) == views
    np.testing.assert_array_equal(detector.frames[0], frame)
    if flip:
        np.testing.assert_array_equal(detector.frames[1], frame[:, ::-1])
    pipe.reset()  # the detector mode (no known animals) sees the plain frame only
    pipe(frame, 2)
    assert len(detector.frames) == views + 1


def test_colour_reacquisition_gives_a_lost_animal_the_leftover_detection_with_its_colours_within_its_reach():
    last = np.array([[0, 0, 30, 40], [200, 0, 230, 40]], float)  # diagonals 50
    dets = np.array([[20, 0, 50, 40],      # 0: 20 px from animal 0's last box (0.4 diagonals)
                     [60, 0, 90, 40],      # 1: 60 px from it (1.2 diagonals)
                     [210, 0, 240, 40]],   # 2: 10 px from animal 1's
                    float)
    scores = np.array([0.9, 0.9, 0.9])
    colour = np.array([[0.8, 0.9, 0.1],
                       [0.1, 0.2, 0.7]])
    args = dict(min_score=0.5, min_similarity=0.5, reach=0.5)
    # one frame lost: reach 0.5 diagonals, so animal 0 takes detection 0 though 1 has more of its colours
    assert colour_reacquisitions(last, [1, 1], dets, scores, colour, [True, True], **args).tolist() == [0, 2]
    # nine frames lost: reach 1.5 diagonals, and detection 1 is the better-coloured one in reach
    assert colour_reacquisitions(last, [9, 1], dets, scores, colour, [True, True], **args).tolist() == [1, 2]
    # an animal with a detection already (not lone) takes nothing
    assert colour_reacquisitions(last, [1, 1], dets, scores, colour, [False, True], **args).tolist() == [-1, 2]


def test_colour_reacquisition_refuses_weak_detections_unlike_colours_and_a_detection_more_like_another_animal():
    last = np.array([[0, 0, 30, 40], [40, 0, 70, 40]], float)
    det = np.array([[10, 0, 40, 40]], float)  # within reach of both animals

    def take(colour, score=0.9, lone=(True, True)):
        return colour_reacquisitions(last, [1, 1], det, [score], np.array(colour, float).reshape(2, 1), lone,
                                     min_score=0.5, min_similarity=0.5, reach=1.0)

    assert take([0.8, 0.6]).tolist() == [0, -1]
    assert take([0.8, 0.6], score=0.4).tolist() == [-1, -1]           # the detector is not sure enough
    assert take([0.4, 0.3]).tolist() == [-1, -1]                      # neither has its colours
    assert take([0.6, 0.8]).tolist() == [-1, 0]                       # it is more like the other animal
    assert take([0.6, 0.8], lone=[True, False]).tolist() == [-1, -1]  # ... even when that one has its own
    assert colour_reacquisitions(last, [1, 1], np.zeros((0, 4)), [], np.zeros((2, 0)), [True, True],
                                 0.5, 0.5, 1.0).tolist() == [-1, -1]


def test_an_animal_lost_behind_another_takes_a_leftover_detection_with_its_colours_and_restarts_there():
    red, blue = [(30, 60, 200)] * 2, [(200, 80, 20)] * 2
    a_box, b_box = [20, 20, 60, 70], [150, 20, 190, 70]
    first = painted(painted(FRAME, a_box, red), b_box, blue)
    out_box = [50, 20, 90, 70]                        # A comes out of cover here, 0.47 box diagonals right
    later = painted(painted(FRAME, out_box, red), b_box, blue)
    drifted = [20, 100, 60, 150]                      # A's SOT followed something else, far below
    found = {}
    for on in (False, True):
        prop, _ = propagator_with([[(drifted, 0.3)], [(b_box, 0.9)]], colour_reacquire=on, hindsight_frames=0)
        prop.start(first, Instances([a_box, b_box], [1, 1], track_ids=[1, 2]), box_pose)
        # B's detection and one on A's new place (IoU 0.14 with A's last box, none with its SOT's)
        dets = Instances([b_box, out_box], [0.9, 0.8])
        prop.step(later, 1, box_pose, dets)
        found[on] = prop.carried.boxes_xyxy[0].astype(float)
        assert prop.evidence.reacquired.tolist() == [on, False]
    assert box_iou_xyxy(found[True][None], np.array([out_box], float))[0, 0] > 0.8
    assert box_iou_xyxy(found[False][None], np.array([out_box], float))[0, 0] < 0.3

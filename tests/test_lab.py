"""Lab recordings: the background detector, the arena, a known number of animals (--animals)."""

import json

import cv2
import numpy as np
import pytest

from aptrack.cli import main
from aptrack.core.boxes import box_iou_xyxy
from aptrack.core.errors import ConfigError, VideoError
from aptrack.core.instances import Instances
from aptrack.data.topview import TopViewConfig, TopViewScene, write_top_view_video
from aptrack.detect.background import ArenaFilter, BackgroundDetector, auto_arena, parse_arena, split_blob
from aptrack.detect.config import BackgroundConfig
from aptrack.io.video import VideoReader, sample_video_frames
from aptrack.track import PoseTracker
from aptrack.track.config import TrackerConfig
from aptrack.track.matching import known_animal_similarity

SMALL = dict(width=240, height=180, body_length=36.0, speed=5.0)


def scene_frames(count, seed=0, **kwargs):
    return list(TopViewScene(TopViewConfig(**{**SMALL, **kwargs}), seed=seed).frames(count))


def detection_rate(detector, frames, min_iou=0.7):
    """Of the animals whose box touches no other's: the fraction found (IoU >= min_iou); and extra boxes."""
    hits = total = extra = 0
    for i, (frame, boxes, _) in enumerate(frames):
        found = detector(frame, i)
        overlap = box_iou_xyxy(boxes, boxes) - np.eye(len(boxes))
        alone = boxes[overlap.max(axis=1, initial=0.0) <= 0]
        total += len(alone)
        extra += max(len(found) - len(boxes), 0)
        if len(found) and len(alone):
            hits += int((box_iou_xyxy(alone, found.boxes_xyxy).max(axis=1) >= min_iou).sum())
    return hits / total, extra


# -- the background detector ----------------------------------------------------

def test_a_dark_mouse_on_a_light_arena_is_found_in_every_frame():
    frames = scene_frames(40)
    det = BackgroundDetector(BackgroundConfig(sample_frames=20), arena="auto").fit([f for f, _, _ in frames[::2]])
    assert det.polarity == "dark" and det.still_animals == 0
    rate, extra = detection_rate(det, frames)
    assert rate == 1.0 and extra == 0
    out = det(frames[0][0], 0)
    assert out.categories.tolist() == ["animal"] and 0.5 < out.scores[0] <= 1.0


def test_light_that_drifts_by_a_third_does_not_flood_the_arena():
    frames = scene_frames(60, light_drift=0.3, light_period=60)
    samples = [f for f, _, _ in frames[::3]]
    relit = BackgroundDetector(BackgroundConfig(), arena="auto").fit(samples)
    assert detection_rate(relit, frames) == (1.0, 0)
    with pytest.raises(VideoError, match="changing light"):  # without it, most of the arena changes
        BackgroundDetector(BackgroundConfig(normalise_light=False), arena="auto").fit(samples)


def test_blobs_report_how_much_of_their_box_they_fill():
    frames = scene_frames(20)
    det = BackgroundDetector(arena="auto").fit([f for f, _, _ in frames[::2]])
    out = det(frames[0][0], 0)
    assert 0.2 < out.extents[0] < 0.9  # an ellipse with a head fills part of its box
    assert np.isnan(Instances(boxes_xyxy=[[0, 0, 1, 1]], scores=[1.0]).extents).all()


def test_bright_animals_on_a_dark_arena_are_told_apart_automatically():
    frames = scene_frames(40, dark=False, animals=2)
    det = BackgroundDetector(BackgroundConfig(), arena="auto").fit([f for f, _, _ in frames[::2]])
    assert det.polarity == "bright"
    rate, _ = detection_rate(det, frames)
    assert rate >= 0.9


def test_an_animal_that_never_moves_is_found_against_the_arena_floor():
    frames = scene_frames(30, still=(0,))
    det = BackgroundDetector(BackgroundConfig(), arena="auto").fit([f for f, _, _ in frames[::3]])
    assert det.still_animals == 1
    rate, extra = detection_rate(det, frames)
    assert rate == 1.0 and extra == 0


def test_a_still_animal_beside_a_moving_one_is_found_when_the_count_is_known():
    frames = scene_frames(40, animals=2, still=(1,), seed=1)
    samples = [f for f, _, _ in frames[::2]]
    unaware = BackgroundDetector(BackgroundConfig(), arena="auto").fit(samples)
    told = BackgroundDetector(BackgroundConfig(), arena="auto", animals=2).fit(samples)
    assert unaware.still_animals == 0 and told.still_animals == 1
    assert detection_rate(unaware, frames)[0] <= 0.55  # the moving one only
    assert detection_rate(told, frames)[0] >= 0.9


def test_a_blob_of_two_touching_animals_is_split_by_the_predicted_centres():
    labels = np.zeros((60, 100), np.int32)
    labels[20:40, 10:50] = 1   # one animal
    labels[22:38, 50:90] = 1   # the other, touching it
    boxes = split_blob(labels, 1, np.array([10, 20, 90, 40.0]), 2, np.array([[30.0, 30.0], [70.0, 30.0]]))
    boxes = sorted(boxes, key=lambda b: b[0])
    assert len(boxes) == 2
    assert box_iou_xyxy(boxes[0], [10, 20, 50, 40])[0, 0] > 0.8
    assert box_iou_xyxy(boxes[1], [50, 22, 90, 38])[0, 0] > 0.8


def test_two_animals_merged_in_one_blob_come_out_as_two_boxes():
    frames = scene_frames(30, seed=2)
    det = BackgroundDetector(BackgroundConfig(), arena="auto").fit([f for f, _, _ in frames[::3]])
    frame, boxes, _ = frames[0]
    # a second animal pasted right behind the first: one blob of two animals
    x1, y1, x2, y2 = boxes[0].astype(int)
    pad = 3
    patch = frame[y1 - pad:y2 + pad, x1 - pad:x2 + pad].copy()
    merged = frame.copy()
    dx = (x2 - x1) - 2
    merged[y1 - pad:y2 + pad, x1 - pad + dx:x2 + pad + dx] = np.minimum(
        merged[y1 - pad:y2 + pad, x1 - pad + dx:x2 + pad + dx], patch)
    centres = np.array([[(x1 + x2) / 2, (y1 + y2) / 2], [(x1 + x2) / 2 + dx, (y1 + y2) / 2]])
    assert len(det(merged, 0)) >= 1
    split = det(merged, 0, centres)
    assert len(split) == 2
    got = np.sort((split.boxes_xyxy[:, 0] + split.boxes_xyxy[:, 2]) / 2)
    np.testing.assert_allclose(got, np.sort(centres[:, 0]), atol=0.25 * (x2 - x1))


def test_a_moving_camera_is_refused_with_a_hint_to_use_yolo():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (240, 320)).astype(np.uint8), (9, 9), 0)
    texture = cv2.equalizeHist(texture)
    frames = [cv2.cvtColor(np.roll(texture, 9 * i, axis=1)[:, :240], cv2.COLOR_GRAY2BGR) for i in range(12)]
    with pytest.raises(VideoError, match="does not hold still.*--detector yolov8n"):
        BackgroundDetector().fit(frames)


def test_an_empty_arena_is_refused():
    frames = [frame for frame, _, _ in scene_frames(12, animals=0)]
    with pytest.raises(VideoError, match="no animal found.*empty"):
        BackgroundDetector(arena="auto").fit(frames)


def test_nothing_outside_the_arena_is_an_animal():
    frames = scene_frames(60, animals=2, seed=5)
    half = SMALL["width"] // 2
    det = BackgroundDetector(arena=f"0,0,{half},{SMALL['height']}").fit([f for f, _, _ in frames[::3]])
    found = [det(f, i) for i, (f, _, _) in enumerate(frames)]
    assert sum(len(d) for d in found) > 0
    assert max(float(d.boxes_xyxy[:, 2].max()) for d in found if len(d)) <= half


# -- the arena ---------------------------------------------------------------------

def test_arena_specs_rectangle_mask_and_auto(tmp_path):
    mask = parse_arena("10,20,30,40", (100, 200))
    assert mask.sum() == 30 * 40 and mask[20, 10] and not mask[19, 10] and not mask[60, 10]
    png = tmp_path / "arena.png"
    img = np.zeros((100, 200), np.uint8)
    img[5:50, 5:60] = 255
    cv2.imwrite(str(png), img)
    assert parse_arena(str(png), (100, 200)).sum() == 45 * 55
    with pytest.raises(ConfigError, match="is 200x100, the video 100x50"):
        parse_arena(str(png), (50, 100))
    with pytest.raises(ConfigError, match="does not overlap"):
        parse_arena("500,500,10,10", (100, 200))
    with pytest.raises(ConfigError, match="no such mask"):
        parse_arena("nowhere.png", (100, 200))
    with pytest.raises(ConfigError, match="background"):
        parse_arena("auto", (100, 200))
    scene = TopViewScene(TopViewConfig(**SMALL))
    x, y, w, h = scene.arena_xywh
    found = auto_arena(scene.background().astype(np.float32))
    inside = np.zeros_like(found)
    inside[y:y + h, x:x + w] = True
    assert (found & inside).sum() / inside.sum() > 0.9 and not (found & ~inside).any()


def test_arena_filter_drops_boxes_whose_centre_is_outside():
    def detector(frame, index):
        return Instances(boxes_xyxy=[[10, 10, 20, 20], [80, 80, 90, 90]], scores=[0.9, 0.8], frame_index=index)

    kept = ArenaFilter(detector, "0,0,50,50")(np.zeros((100, 100, 3), np.uint8), 3)
    assert kept.boxes_xyxy.tolist() == [[10, 10, 20, 20]] and kept.frame_index == 3
    with pytest.raises(ConfigError, match="auto"):
        ArenaFilter(detector, "auto")


def test_frames_are_sampled_over_the_whole_video_without_reading_it_all(tmp_path):
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(50):
        writer.write(np.full((24, 32, 3), i * 5, np.uint8))
    writer.release()
    frames = sample_video_frames(path, 0, None, 6)
    levels = [int(f.mean()) for f in frames]
    assert len(frames) == 6
    assert levels[0] < 10 and levels[-1] > 235 and levels == sorted(levels)
    assert len(VideoReader(path, start=40).sample(100)) == 10


# -- a known number of animals ---------------------------------------------------

def frame(index, boxes, scores=None):
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return Instances(boxes_xyxy=boxes, scores=np.full(len(boxes), 0.9) if scores is None else scores,
                     frame_index=index)


def box_at(cx, cy, w=40, h=30):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def test_known_count_never_makes_more_ids_and_takes_the_most_confident_first():
    tracker = PoseTracker(TrackerConfig(max_animals=2))
    ids = set()
    for f in range(30):
        boxes = [box_at(50, 50), box_at(200, 50), box_at(350, 50)]
        if f > 10:  # a fourth blob wanders in
            boxes.append(box_at(100 + 5 * f, 200))
        out = tracker.update(frame(f, boxes, np.array([0.9, 0.5, 0.95, 0.9][:len(boxes)])))
        ids.update(out.track_ids.tolist())
        assert len(out) <= 2
    assert ids == {1, 2} and tracker.num_ids == 2
    first = tracker.update(frame(30, [box_at(50, 50), box_at(350, 50)]))
    assert sorted(first.boxes_xyxy[:, 0].tolist()) == [30.0, 330.0]  # the 0.9 and 0.95 ones


def test_an_animal_lost_for_longer_than_the_buffer_keeps_its_id_wherever_it_comes_back():
    tracker = PoseTracker(TrackerConfig(max_animals=2, track_buffer=5))
    seen = []
    for f in range(60):
        boxes = [box_at(50 + f, 50)]
        if f < 10:
            boxes.append(box_at(300, 300))
        elif f >= 40:
            boxes.append(box_at(600, 100))  # back far away, long after the buffer
        out = tracker.update(frame(f, boxes))
        seen.append(dict(zip(out.track_ids.tolist(), out.boxes_xyxy[:, 0].tolist())))
    assert set(seen[-1]) == {1, 2} and seen[-1][2] == 580.0
    unlimited = PoseTracker(TrackerConfig(track_buffer=5))
    for f in range(60):
        boxes = [box_at(50 + f, 50)] + ([box_at(300, 300)] if f < 10 else [box_at(600, 100)] if f >= 40 else [])
        out = unlimited.update(frame(f, boxes))
    assert 2 not in out.track_ids.tolist()  # without the count it is a new animal


def test_a_second_box_on_an_animal_already_matched_is_not_given_to_the_lost_one():
    tracker = PoseTracker(TrackerConfig(max_animals=2))
    for f in range(5):
        tracker.update(frame(f, [box_at(50, 50), box_at(300, 50)]))
    out = tracker.update(frame(5, [box_at(50, 50), [40, 40, 55, 60]]))  # animal 2 hidden; a part of animal 1
    assert out.track_ids.tolist() == [1]


def test_one_known_animal_is_followed_through_a_turn_that_changes_its_look():
    looks = np.eye(4, dtype=np.float32)
    tracker = PoseTracker(TrackerConfig(max_animals=1))
    ids = []
    for f in range(20):
        inst = frame(f, [box_at(100 + 3 * f, 80)]).with_(embeddings=looks[[min(f // 5, 3)]])
        ids += tracker.update(inst).track_ids.tolist()
    assert ids == [1] * 20


def test_known_animal_similarity_prefers_near_and_alike_and_is_never_zero():
    expected = np.array([box_at(0, 0), box_at(500, 0)])
    dets = np.array([box_at(10, 0), box_at(490, 0), box_at(5000, 5000)])
    sim = known_animal_similarity(expected, [0, 0], dets)
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0] and (sim > 0).all()
    lost_long = known_animal_similarity(expected, [100, 0], dets)
    assert lost_long[0, 1] > sim[0, 1]  # the longer lost, the farther it may be
    app = np.array([[0.0, 1.0, np.nan], [1.0, 0.0, np.nan]])
    mixed = known_animal_similarity(expected, [0, 0], dets, app, appearance_weight=0.9)
    assert mixed[0, 1] > mixed[0, 0] and mixed[0, 2] == sim[0, 2]


@pytest.mark.parametrize("value", [0, -2, 1.5, "two", True])
def test_max_animals_must_be_a_whole_number_from_one(value):
    with pytest.raises(ConfigError, match="max_animals"):
        TrackerConfig(max_animals=value)


# -- the command line ---------------------------------------------------------------

@pytest.fixture(scope="module")
def mouse_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("lab") / "mouse.avi"
    boxes, _ = write_top_view_video(path, TopViewScene(TopViewConfig(**SMALL, light_drift=0.05), seed=3), 60)
    return path, boxes


def test_run_with_the_background_detector_and_one_animal_gives_one_id_in_every_frame(mouse_video, tmp_path,
                                                                                     capsys):
    path, boxes = mouse_video
    code = main(["run", str(path), "-o", str(tmp_path), "--pipeline", "arena", "--animals", "1", "--pose", "none",
                 "--no-video", "--quiet", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    data = json.load(open(tmp_path / "mouse.json"))
    anns = data["annotations"]
    assert sorted({a["frame"] for a in anns}) == list(range(60)) and {a["track_id"] for a in anns} == {1}
    got = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in sorted(anns, key=lambda a: a["frame"]))])
    assert np.mean([box_iou_xyxy(b, g[None])[0, 0] for b, g in zip(boxes[:, 0], got)]) > 0.85
    assert data["info"]["models"]["detector"]["kind"] == "background"
    assert all(0 < a["extent"] <= 1 for a in anns)


@pytest.mark.parametrize("value,needle", [("0", "at least 1 animal"), ("-3", "at least 1 animal"),
                                          ("many", "whole number")])
def test_a_bad_animal_count_is_one_line(value, needle, mouse_video, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", str(mouse_video[0]), "-o", str(tmp_path), "--animals", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_an_empty_arena_ends_the_run_with_one_line(tmp_path, capsys):
    path = tmp_path / "empty.avi"
    write_top_view_video(path, TopViewScene(TopViewConfig(**SMALL, animals=0)), 20)
    code = main(["run", str(path), "-o", str(tmp_path / "out"), "--detector", "background", "--pose", "none",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no animal found" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "empty.json").exists()

"""Appearance embeddings: thumbnails that know an animal from its mirror image, and re-identification."""

import numpy as np
import pytest

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.track import PoseTracker
from aptrack.track.appearance import AppearanceEmbedder, colour_histograms, has_colour, thumbnail_embeddings
from aptrack.track.config import AppearanceConfig, TrackerConfig


def _animal(h=40, w=60):
    """An asymmetric 'animal': a bright head block on the left of a grey body, on black."""
    img = np.zeros((h, w, 3), np.uint8)
    img[10:30, 5:55] = 120
    img[5:20, 5:20] = (250, 200, 30)
    return img


def test_thumbnail_is_unit_length_and_the_same_for_a_rescaled_animal():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[20:60, 20:80] = _animal()
    import cv2
    frame[100:180, 150:270] = cv2.resize(_animal(), (120, 80), interpolation=cv2.INTER_NEAREST)
    e = thumbnail_embeddings(frame, [[20, 20, 80, 60], [150, 100, 270, 180]])
    assert e.shape == (2, 8 * 8 * 3) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > 0.95


def test_thumbnail_tells_an_animal_from_its_mirror_image():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[20:60, 20:80] = _animal()
    frame[20:60, 120:180] = _animal()[:, ::-1]
    e = thumbnail_embeddings(frame, [[20, 20, 80, 60], [120, 20, 180, 60]])
    assert e[0] @ e[1] < 0.6


def test_boxes_outside_the_frame_or_of_one_colour_have_no_embedding():
    frame = np.full((50, 50, 3), 7, np.uint8)
    e = thumbnail_embeddings(frame, [[60, 60, 90, 90], [5, 5, 40, 40], [10, 10, 10, 30]])
    assert not e.any()


def test_colour_histograms_match_a_part_of_an_animal_to_the_whole_and_not_to_another_animal():
    animal = np.zeros((40, 60, 3), np.uint8)
    animal[:] = (40, 120, 200)                                # an orange body (BGR)
    animal[5:20, 5:25] = (200, 60, 40)                        # a blue head
    animal[25:35, 30:55] = (30, 30, 160)                      # a red patch
    frame = np.zeros((100, 300, 3), np.uint8)
    frame[20:60, 20:80] = animal
    frame[20:60, 120:180] = animal[:, :, ::-1]                # the same shape in other colours
    frame[20:60, 220:250] = animal[:, :30]                    # the left half of the first animal
    h = colour_histograms(frame, [[20, 20, 80, 60], [120, 20, 180, 60], [220, 20, 250, 60]])
    assert h.shape == (3, 16 * 8) and h.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(h, axis=1), 1.0, atol=1e-5)
    assert h[0] @ h[2] > 0.9       # a part: mostly the same colours in other amounts
    assert h[0] @ h[1] < 0.9 * (h[0] @ h[2])
    # the correlation OpenCV's compareHist gives
    import cv2

    def hist(x1, x2):
        return cv2.calcHist([cv2.cvtColor(frame[20:60, x1:x2], cv2.COLOR_BGR2HSV)], [0, 1], None, [16, 8],
                            [0, 180, 0, 256])
    assert h[0] @ h[1] == pytest.approx(cv2.compareHist(hist(20, 80), hist(120, 180), cv2.HISTCMP_CORREL), abs=1e-5)


def test_colour_histograms_of_boxes_outside_the_frame_are_zero_and_inputs_are_left_alone():
    frame = np.zeros((50, 50, 3), np.uint8)
    boxes = np.array([[60.0, 60, 90, 90], [10, 10, 10, 30], [0, 0, 20, 20]])
    h = colour_histograms(frame, boxes)
    assert not h[:2].any() and h[2].any()
    assert boxes[0, 0] == 60.0 and not frame.any()


def test_grey_frames_are_told_and_their_boxes_compared_by_grey_levels():
    frame = np.zeros((40, 120, 3), np.uint8)
    frame[:, :40] = 60
    frame[:, 20:40] = 200                 # a two-tone grey animal
    frame[:, 40:60] = 200                 # its bright half, alone
    frame[:, 80:120] = 120                # another grey animal
    assert not has_colour(frame) and not has_colour(frame[..., 0])
    h = colour_histograms(frame, [[0, 0, 40, 40], [40, 0, 60, 40], [80, 0, 120, 40]], grey=True)
    assert h[0] @ h[1] > 0.6 > h[0] @ h[2]
    # in hue and saturation every grey box is the same
    hs = colour_histograms(frame, [[0, 0, 40, 40], [80, 0, 120, 40]])
    assert hs[0] @ hs[1] == pytest.approx(1.0)
    frame[0, 0] = (0, 0, 255)
    assert has_colour(frame)


def test_embedder_returns_a_new_instances_with_embeddings_and_leaves_the_input_alone():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[20:60, 20:80] = _animal()
    dets = Instances(boxes_xyxy=[[20, 20, 80, 60]], scores=[0.9])
    out = AppearanceEmbedder(AppearanceConfig(kind="thumbnail", width=4, height=4))(frame, dets)
    assert out.embeddings.shape == (1, 48) and dets.embeddings.shape == (1, 0)
    assert AppearanceEmbedder(AppearanceConfig(kind="none"))(frame, dets) is dets


def test_appearance_settings_out_of_range_are_config_errors():
    with pytest.raises(ConfigError, match="appearance.kind"):
        AppearanceConfig(kind="osnet")
    with pytest.raises(ConfigError, match="inner_fraction"):
        AppearanceConfig(inner_fraction=0)
    with pytest.raises(ConfigError, match="reid_min_similarity"):
        TrackerConfig(reid_min_similarity=2)


def _looks(*axes, d=8):
    out = np.zeros((len(axes), d), np.float32)
    out[np.arange(len(axes)), axes] = 1.0
    return out


def _frame(f, boxes, looks):
    return Instances(boxes_xyxy=np.asarray(boxes, float).reshape(-1, 4), scores=np.full(len(boxes), 0.9),
                     embeddings=looks if len(boxes) else np.zeros((0, 8), np.float32), frame_index=f)


def test_an_animal_back_far_from_where_it_hid_is_known_by_its_look():
    def run(with_looks):
        tracker = PoseTracker(TrackerConfig(appearance_weight=0.3))
        ids = []
        for f in range(30):
            boxes = [[10, 10, 50, 40], [300, 10, 340, 40]]
            looks = _looks(0, 1)
            if 10 <= f < 20:  # the second animal hides, then comes back 150 px lower
                boxes, looks = boxes[:1], looks[:1]
            elif f >= 20:
                boxes[1] = [300, 160, 340, 190]
            dets = _frame(f, boxes, looks if with_looks else np.zeros((len(boxes), 0), np.float32))
            out = tracker.update(dets)
            ids.append(out.track_ids.tolist())
        return ids

    assert all(i == [1, 2] for i in run(True)[20:])
    assert run(False)[-1] == [1, 3]  # by boxes alone it is a new animal


def test_a_detection_that_looks_more_like_a_tracked_animal_does_not_take_a_lost_id():
    tracker = PoseTracker(TrackerConfig())
    for f in range(5):
        tracker.update(_frame(f, [[10, 10, 50, 40], [300, 10, 340, 40]], _looks(0, 1)))
    # the second animal vanishes; a far box that looks like the first (a duplicate) shows up
    look = np.stack([_looks(0)[0], 0.8 * _looks(0)[0] + 0.6 * _looks(1)[0]])  # 0.8 vs first, 0.6 vs second
    out = tracker.update(_frame(5, [[10, 10, 50, 40], [200, 150, 240, 180]], look))
    assert out.track_ids.tolist() == [1]  # not given id 2: the margin over the first animal is negative


def test_appearance_decides_between_two_overlapping_animals():
    def first_id_of_right_box(weight):
        # the two first boxes overlap by IoU 0.14: let such crops describe their tracks
        # (gate and the later correction by look off: the weighting alone decides)
        tracker = PoseTracker(TrackerConfig(appearance_weight=weight, min_hits=1, embedding_max_overlap=0.2,
                                            appearance_gate=-1.0, relook_frames=0))
        for f in range(3):
            tracker.update(_frame(f, [[0, 0, 40, 40], [30, 0, 70, 40]], _looks(0, 1)))
        # both jump; the box on the right now overlaps the first track more, but looks like the second
        out = tracker.update(_frame(3, [[12, 0, 52, 40], [-20, 0, 20, 40]], _looks(1, 0)))
        return int(out.track_ids[np.argmax(out.boxes_xyxy[:, 0])])

    assert first_id_of_right_box(0.0) == 1
    assert first_id_of_right_box(0.5) == 2


def test_instances_keep_embeddings_through_take_and_concatenate():
    a = Instances(boxes_xyxy=[[0, 0, 1, 1]], scores=[1], embeddings=[[1, 0]])
    b = Instances(boxes_xyxy=[[0, 0, 2, 2]], scores=[1])
    both = Instances.concatenate([a, b])
    assert both.embeddings.tolist() == [[1, 0], [0, 0]]
    assert both.take([1]).embeddings.shape == (1, 2)
    assert not both.interpolated.any()


def test_a_detection_that_looks_unlike_a_track_never_takes_its_id_however_well_the_boxes_overlap():
    tracker = PoseTracker(TrackerConfig(appearance_gate=0.1, min_hits=1))
    for f in range(3):
        tracker.update(_frame(f, [[10, 10, 50, 40]], _looks(0)))
    out = tracker.update(_frame(3, [[11, 10, 51, 40]], _looks(1)))  # same place, another animal
    assert out.track_ids.tolist() == [2]
    out = PoseTracker(TrackerConfig(appearance_gate=-1.0, min_hits=1))
    for f in range(3):
        out.update(_frame(f, [[10, 10, 50, 40]], _looks(0)))
    assert out.update(_frame(3, [[11, 10, 51, 40]], _looks(1))).track_ids.tolist() == [1]  # gate off


def test_a_new_track_that_comes_to_look_like_a_lost_animal_gets_its_id_when_confirmed():
    tracker = PoseTracker(TrackerConfig(min_hits=3, reid_min_similarity=0.8))
    for f in range(5):
        tracker.update(_frame(f, [[10, 10, 50, 40]], _looks(0)))
    blurred = np.full((1, 8), 0.35, np.float32)  # coming out from cover: looks like nothing yet
    blurred /= np.linalg.norm(blurred)
    ids = []
    for f, look in zip(range(5, 9), [blurred, blurred, _looks(0), _looks(0)]):
        ids.append(tracker.update(_frame(f, [[200, 150, 240, 180]], look)).track_ids.tolist())
    assert ids == [[], [], [1], [1]] and tracker.num_ids == 1


def _two_animals_then_both_hidden(config):
    """Animals of looks 0 (id 1, left) and 1 (id 2, right) for 5 frames, then 10 frames unseen."""
    tracker = PoseTracker(config)
    for f in range(5):
        tracker.update(_frame(f, [[10, 10, 50, 40], [300, 10, 340, 40]], _looks(0, 1)))
    for f in range(5, 15):
        tracker.update(_frame(f, [], None))
    return tracker


def test_an_id_given_on_a_poor_look_is_taken_back_once_the_animal_is_seen_clearly():
    def ids_of_the_animal_coming_back(relook_frames):
        tracker = _two_animals_then_both_hidden(TrackerConfig(relook_frames=relook_frames))
        e0, e1 = _looks(0)[0], _looks(1)[0]
        poor = (0.8 * e0 + 0.6 * e1)[None]  # more like the first animal (0.8 vs 0.6), but it is the second
        clear = (0.3 * e0 + 0.954 * e1)[None]  # like the second (0.95); like the first only 0.3 (no veto)
        clear /= np.linalg.norm(clear)
        box = [[150, 100, 190, 130]]  # far from both
        ids = [tracker.update(_frame(15, box, poor)).track_ids.tolist()]
        ids += [tracker.update(_frame(f, box, clear)).track_ids.tolist() for f in (16, 17)]
        # the first animal comes back where it hid, looking like itself
        ids.append(tracker.update(_frame(18, [[150, 100, 190, 130], [10, 10, 50, 40]],
                                         np.concatenate([clear, _looks(0)]))).track_ids.tolist())
        return ids

    assert ids_of_the_animal_coming_back(100) == [[1], [2], [2], [1, 2]]
    assert ids_of_the_animal_coming_back(0) == [[1], [1], [1], [1]]  # never taken back: the first animal is new


def test_a_sliver_of_an_animal_coming_out_is_not_reidentified_by_its_look_alone():
    def first_output(ratio):
        tracker = _two_animals_then_both_hidden(TrackerConfig(reid_min_area_ratio=ratio))
        sliver = [[150, 100, 160, 130]]  # a quarter of the animal's box, far from where it hid
        return tracker.update(_frame(15, sliver, _looks(0))).track_ids.tolist()

    assert first_output(0.0) == [1]
    assert first_output(0.5) == []  # a new tentative track, named when it is confirmed


def _animal_sliding_behind_cover(config):
    """Look 0 seen whole (40x30 box) for 5 frames, then, at a low score (a crop that teaches no
    look), narrowed to a 16 px sliver as it slides behind cover, then 10 frames unseen."""
    tracker = PoseTracker(config)
    for f in range(5):
        tracker.update(_frame(f, [[10, 10, 50, 40]], _looks(0)))
    for f, width in enumerate((32, 25, 20, 16), start=5):
        low = _frame(f, [[10, 10, 10 + width, 40]], _looks(0))
        assert tracker.update(low.with_(scores=np.full(1, 0.3, np.float32))).track_ids.tolist() == [1]
    for f in range(9, 19):
        tracker.update(_frame(f, [], None))
    return tracker


def test_a_sliver_is_measured_against_the_animal_seen_whole_not_against_its_last_sliver():
    tracker = _animal_sliding_behind_cover(TrackerConfig(reid_min_area_ratio=0.5))
    coming_out = [[150, 100, 165, 130]]  # 15x30: most of the last sliver (16x30), under half the animal
    assert tracker.update(_frame(19, coming_out, _looks(0))).track_ids.tolist() == []
    tracker = _animal_sliding_behind_cover(TrackerConfig(reid_min_area_ratio=0.5))
    assert tracker.update(_frame(19, [[150, 100, 180, 130]], _looks(0))).track_ids.tolist() == [1]  # 30x30


def test_a_crop_that_looks_unlike_its_track_does_not_change_the_track_look():
    def look_after_a_poor_crop(min_similarity):
        tracker = PoseTracker(TrackerConfig(look_min_similarity=min_similarity, appearance_gate=-1.0))
        for f in range(3):
            tracker.update(_frame(f, [[10, 10, 50, 40]], _looks(0)))
        poor = (0.3 * _looks(0) + 0.954 * _looks(1))  # cosine 0.3 with the track's look
        tracker.update(_frame(3, [[10, 10, 50, 40]], poor / np.linalg.norm(poor)))
        return tracker.state()["_emb"][0]

    np.testing.assert_allclose(look_after_a_poor_crop(0.5), _looks(0)[0])
    assert look_after_a_poor_crop(-1.0)[1] > 0.05  # without the rule it mixes in


def _ids_on_a_box_shared_with_an_animal_in_cover(config, like_a, like_b):
    """A (look 0) is tracked; B (look 1) went into cover beside it 7 frames ago. One box then lies over A's
    place and B's, looking ``like_a`` like A and ``like_b`` like B. Returns the ids output on it."""
    look = np.array([[like_a, like_b, np.sqrt(1 - like_a ** 2 - like_b ** 2), 0, 0, 0, 0, 0]], np.float32)
    tracker = PoseTracker(config)
    for f in range(3):
        tracker.update(_frame(f, [[100, 100, 160, 140], [150, 100, 210, 140]], _looks(0, 1)))
    for f in range(3, 9):
        tracker.update(_frame(f, [[100, 100, 160, 140]], _looks(0)))  # B hides
    return tracker.update(_frame(9, [[110, 100, 170, 140]], look)).track_ids.tolist()


def test_a_box_that_looks_more_like_an_animal_in_cover_than_the_tracked_one_it_overlaps_is_not_the_tracked_ones():
    # the box looks 0.2 like A and 0.5 like B (B coming out where A goes in). Without the rule A keeps it
    # (its look passes the 0.1 gate); with yield_look_max 0.3 it is not A's, and B, known by its look, takes it
    def ids_on_the_shared_box(yield_look_max):
        return _ids_on_a_box_shared_with_an_animal_in_cover(TrackerConfig(yield_look_max=yield_look_max), 0.2, 0.5)

    assert ids_on_the_shared_box(-1.0) == [1]
    assert ids_on_the_shared_box(0.3) == [2]


def test_a_detection_over_a_tracked_animal_its_look_refused_does_not_go_to_a_lost_one():
    # A (look 0) is tracked; B (look 1), beside it, hid one frame ago. A's next box, half covered, looks
    # unlike A (cosine 0.05, under the gate) and a little like B (0.3): by the widened boxes alone it would
    # go to lost B (a switch); with lost_yield_iou it goes to no one
    look = np.array([[0.05, 0.3, np.sqrt(1 - 0.05 ** 2 - 0.3 ** 2), 0, 0, 0, 0, 0]], np.float32)

    def ids_on_the_refused_box(yield_iou):
        tracker = PoseTracker(TrackerConfig(lost_yield_iou=yield_iou))
        for f in range(4):
            tracker.update(_frame(f, [[100, 100, 160, 140], [160, 100, 220, 140]], _looks(0, 1)))
        tracker.update(_frame(4, [[100, 100, 160, 140]], _looks(0)))  # B hides
        return tracker.update(_frame(5, [[110, 100, 170, 140]], look)).track_ids.tolist()

    assert ids_on_the_refused_box(0.0) == [2]
    assert ids_on_the_refused_box(0.3) == []


def test_a_box_that_looks_about_as_much_like_an_animal_in_cover_as_like_the_tracked_one_goes_to_neither():
    # the box looks 0.30 like A and 0.25 like B (A going in, B coming out, under one box). A keeps it with
    # yield_look_max alone (it looks more like A); with yield_look_margin 0.1 it is contested: neither's
    def ids_on_the_shared_box(margin):
        config = TrackerConfig(yield_look_max=0.35, yield_look_margin=margin)
        return _ids_on_a_box_shared_with_an_animal_in_cover(config, 0.3, 0.25)

    assert ids_on_the_shared_box(0.0) == [1]
    assert ids_on_the_shared_box(0.1) == []
    assert ids_on_the_shared_box(0.02) == [1]  # 0.30 is more than 0.02 above 0.25: A's


def _animal_refused_beside_the_other(inherit_iou):
    """A (look 0) and B (look 1) side by side for 3 frames; then B, half covered by A (their boxes
    overlap, so neither crop teaches a look), looks like neither for 6 frames (look 2, under the
    gate): B's track is refused and lost, and a new track follows B's box; then B looks like itself
    again. Returns the ids output per frame from the fourth."""
    tracker = PoseTracker(TrackerConfig(inherit_iou=inherit_iou))
    for f in range(3):
        tracker.update(_frame(f, [[100, 100, 160, 140], [150, 100, 210, 140]], _looks(0, 1)))
    side_by_side = [[100, 100, 160, 140], [135, 100, 210, 140]]
    return [tracker.update(_frame(f, side_by_side, _looks(0, 2 if f < 9 else 1))).track_ids.tolist()
            for f in range(3, 10)]


def test_a_new_track_over_a_lost_animals_predicted_box_takes_its_id_when_its_look_names_no_one():
    # the new track waits min_hits_while_lost (6) matched frames, then gets an id: B's with inherit_iou
    # (its box overlaps B's predicted one by IoU 0.8), and keeps it, with B's look, once B looks like itself
    assert _animal_refused_beside_the_other(0.5) == [[1]] * 5 + [[1, 2]] * 2
    assert _animal_refused_beside_the_other(0.0)[5] == [1, 3]  # a new id
    assert _animal_refused_beside_the_other(0.9)[5] == [1, 3]  # IoU 0.8 is not enough


def test_an_heir_by_place_is_refused_when_its_own_look_disagrees():
    tracker = PoseTracker(TrackerConfig(inherit_iou=0.5))
    for f in range(3):
        tracker.update(_frame(f, [[100, 100, 160, 140], [300, 100, 360, 140]], _looks(0, 1)))
    # B's place is now taken by a clean, clear look 2 (a stranger): the gate refuses it B's track and B's id
    ids = [tracker.update(_frame(f, [[100, 100, 160, 140], [305, 100, 365, 140]], _looks(0, 2))).track_ids.tolist()
           for f in range(3, 10)]
    assert ids[-1] == [1, 3]

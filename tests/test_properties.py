"""Properties that hold for any input (hypothesis): box conversions, codecs, crops, OKS, the tracker.

The examples per test come from the active hypothesis profile: ``make test``
runs the short one registered in conftest.py (``ci``), ``benchmarks/properties.sh``
the long one (``HYPOTHESIS_PROFILE=long``).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aptrack.core.boxes import (box_iou_xyxy, cxcywh_to_xyxy, xywh_to_xyxy, xyah_to_xyxy, xyxy_to_cxcywh,
                                xyxy_to_xywh, xyxy_to_xyah)
from aptrack.core.instances import Instances
from aptrack.core.oks import oks_matrix
from aptrack.models.presets import get_preset
from aptrack.pose.codecs import build_codec
from aptrack.pose.transforms import apply_affine, invert_affine, warp_matrix
from aptrack.track import PoseTracker
from aptrack.track.config import TrackerConfig

coordinate = st.floats(-5000, 5000, allow_nan=False, allow_infinity=False)
side = st.floats(0.5, 3000, allow_nan=False, allow_infinity=False)


@st.composite
def boxes_xyxy(draw, max_boxes=6):
    n = draw(st.integers(1, max_boxes))
    x, y = draw(arrays(np.float64, n, elements=coordinate)), draw(arrays(np.float64, n, elements=coordinate))
    w, h = draw(arrays(np.float64, n, elements=side)), draw(arrays(np.float64, n, elements=side))
    return np.stack([x, y, x + w, y + h], axis=1)


@given(boxes_xyxy())
def test_every_box_format_converts_back_to_the_same_xyxy_box(boxes):
    for to, back in ((xyxy_to_xywh, xywh_to_xyxy), (xyxy_to_xyah, xyah_to_xyxy), (xyxy_to_cxcywh, cxcywh_to_xyxy)):
        np.testing.assert_allclose(back(to(boxes)), boxes, rtol=1e-9, atol=1e-6)


@given(boxes_xyxy(), boxes_xyxy())
def test_iou_is_symmetric_in_0_1_and_1_for_a_box_with_itself(a, b):
    ab, ba = box_iou_xyxy(a, b), box_iou_xyxy(b, a)
    np.testing.assert_allclose(ab, ba.T, atol=1e-12)
    assert (ab >= 0).all() and (ab <= 1 + 1e-12).all()
    np.testing.assert_allclose(np.diag(box_iou_xyxy(a, a)), 1.0, atol=1e-9)


CODEC_MODELS = ("aptrack-pose-mnv2-256-ft4", "hrnet-w32-ap10k", "cspnext-m-udp-ap10k", "rtmpose-m-ap10k")
"""One preset per codec: aptrack's DARK heatmaps, mmpose's MSRA and UDP heatmaps, SimCC."""


@pytest.mark.parametrize("model", CODEC_MODELS)
@given(data=st.data())
def test_codec_decode_of_encode_gives_the_keypoints_back_within_one_quantisation_step(model, data):
    preset = get_preset(model)
    codec = build_codec(preset.input_size, preset.codec)
    w, h = preset.input_size
    margin = 16.0  # whole Gaussians: a keypoint at the crop's very edge is cut by it
    xs = data.draw(arrays(np.float64, 5, elements=st.floats(margin, w - 1 - margin)))
    ys = data.draw(arrays(np.float64, 5, elements=st.floats(margin, h - 1 - margin)))
    keypoints = np.stack([xs, ys], axis=1)
    if preset.codec["type"] == "simcc":
        tx, ty, _ = codec.encode(keypoints, np.ones(5))
        decoded, scores = codec.decode(tx, ty)
        step = 1.0 / codec.simcc_split_ratio  # one bin, in input pixels
    else:
        heatmaps, _ = codec.encode(keypoints, np.ones(5))
        decoded, scores = codec.decode(heatmaps)
        step = w / heatmaps.shape[-1]  # one heatmap cell, in input pixels
    decoded = np.asarray(decoded).reshape(-1, 2)
    assert np.abs(decoded - keypoints).max() <= 0.5 * step + 1e-3
    assert (np.asarray(scores) > 0.5).all()


@given(center=st.tuples(coordinate, coordinate), width=side, aspect=st.floats(0.25, 4.0),
       rotation=st.floats(-180, 180), points=arrays(np.float64, (7, 2), elements=coordinate))
def test_the_inverse_crop_matrix_maps_crop_keypoints_back_to_the_frame(center, width, aspect, rotation, points):
    matrix = warp_matrix(center, (width, width / aspect), (192, 256), rotation)
    back = apply_affine(apply_affine(points, matrix), invert_affine(matrix))
    np.testing.assert_allclose(back, points, atol=1e-6 * (1 + np.abs(points).max()))


SIGMAS = np.full(5, 0.08)


@given(kp=arrays(np.float64, (2, 5, 2), elements=st.floats(0, 500)), area=st.floats(1.0, 1e5))
def test_oks_is_one_for_identical_poses_and_symmetric_for_poses_of_one_area(kp, area):
    vis = np.ones((2, 5), bool)
    same = oks_matrix(kp, vis, kp, vis, np.full(2, area), SIGMAS)
    np.testing.assert_allclose(np.diag(same), 1.0)
    assert (same >= 0).all() and (same <= 1 + 1e-12).all()
    np.testing.assert_allclose(same, same.T, atol=1e-12)  # one area for both roles


@st.composite
def detection_streams(draw):
    """A few frames of random boxes (some overlapping, some tiny, some missing), scores in [0, 1]."""
    frames = []
    for _ in range(draw(st.integers(1, 25))):
        n = draw(st.integers(0, 6))
        xy = draw(arrays(np.float64, (n, 2), elements=st.floats(0, 600)))
        wh = draw(arrays(np.float64, (n, 2), elements=st.floats(0.5, 200)))
        scores = draw(arrays(np.float32, n, elements=st.floats(0, 1, width=32)))
        frames.append((np.concatenate([xy, xy + wh], axis=1), scores))
    return frames


@given(detection_streams(), st.sampled_from([1, 3]), st.integers(1, 30))
def test_any_detection_stream_is_tracked_with_fresh_ids_and_never_more_animals_than_detections(
        frames, min_hits, buffer):
    tracker = PoseTracker(TrackerConfig(min_hits=min_hits, track_buffer=buffer,
                                        min_hits_while_lost=max(min_hits, 1)))
    seen: set[int] = set()
    last_ids: set[int] = set()
    for t, (boxes, scores) in enumerate(frames):
        given_boxes = boxes.copy()
        out = tracker.update(Instances(boxes, scores, frame_index=t))
        np.testing.assert_array_equal(boxes, given_boxes)  # the input is not changed
        ids = out.track_ids.tolist()
        assert len(ids) == len(set(ids)) and len(out) <= len(boxes)
        assert all(i >= 1 for i in ids)
        new = set(ids) - seen
        # an id is fresh when it first appears: larger than every id seen before
        assert all(i > max(seen, default=0) for i in new)
        seen |= new
        last_ids = set(ids)
    assert last_ids <= seen

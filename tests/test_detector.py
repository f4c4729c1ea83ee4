import numpy as np
from conftest import YOLO_INT8

from aptrack.detect.config import DetectorConfig
from aptrack.detect.yolo import ANIMAL_LABEL, YoloAnimalDetector
from aptrack.io.video import VideoReader


def _frames(path, n):
    reader = VideoReader(path)
    try:
        return [frame for _, frame in zip(range(n), (f for _, f in reader))]
    finally:
        reader.close()


def test_fast_path_gives_the_same_boxes_as_predict(dog_clip, mirror):
    frames = _frames(dog_clip, 6)
    det = YoloAnimalDetector(YOLO_INT8, DetectorConfig(), "cpu")
    first = det(frames[0])
    assert det._fast_ready and len(first) >= 1
    for frame in frames[1:]:
        slow = det._predict(frame)
        fast = det._predict_fast(frame)
        np.testing.assert_allclose(fast[0], slow[0], atol=1e-3)
        np.testing.assert_allclose(fast[1], slow[1], atol=1e-6)
        np.testing.assert_array_equal(fast[2], slow[2])


def test_animal_classes_merge_into_one_label(dog_clip, mirror):
    frame = _frames(dog_clip, 1)[0]
    before = frame.copy()
    det = YoloAnimalDetector(YOLO_INT8, DetectorConfig(), "cpu", fast=False)
    out = det(frame, frame_index=7)
    np.testing.assert_array_equal(frame, before)  # the frame is not modified
    assert out.frame_index == 7 and (out.labels == ANIMAL_LABEL).all()
    assert set(out.categories) <= {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear",
                                   "zebra", "giraffe"}
    x1, y1, x2, y2 = out.boxes_xyxy[np.argmax(out.scores)]
    h, w = frame.shape[:2]
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and (x2 - x1) * (y2 - y1) > 0.1 * w * h

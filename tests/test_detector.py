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


def test_a_pytorch_detector_takes_several_frames_in_one_pass_with_the_boxes_of_one_at_a_time():
    # YOLOv8n built from its architecture file (random weights, nothing downloaded): a PyTorch model
    det = YoloAnimalDetector("yolov8n.yaml", DetectorConfig(score_threshold=1e-4, classes=None, image_size=320), "cpu")
    rng = np.random.default_rng(0)
    frames = [(i, rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)) for i in range(3)]
    det(frames[0][1], 0)  # the first call sets the predictor up
    assert det.takes_batches
    calls = []
    det.model.predictor.model.register_forward_hook(lambda m, inputs, out: calls.append(inputs[0].shape[0]))
    together = det.detect_many(frames)
    assert calls == [3]
    for (index, frame), got in zip(frames, together):
        alone = det(frame, index)
        assert got.frame_index == index and len(got) == len(alone) > 0
        np.testing.assert_allclose(got.scores, alone.scores, atol=1e-4)
        np.testing.assert_allclose(got.boxes_xyxy, alone.boxes_xyxy, atol=0.05)


def test_an_onnx_detector_with_a_fixed_batch_takes_frames_one_at_a_time(dog_clip, mirror):
    det = YoloAnimalDetector(YOLO_INT8, DetectorConfig(), "cpu")
    frames = list(enumerate(_frames(dog_clip, 3)))
    det(frames[0][1], 0)
    assert not det.takes_batches  # the int8 ONNX file's batch is fixed at 1
    for (index, frame), got in zip(frames, det.detect_many(frames)):
        np.testing.assert_array_equal(got.boxes_xyxy, det(frame, index).boxes_xyxy)

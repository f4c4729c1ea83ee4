"""The one frame loop (iter_frames / process_video) and where resources are found."""

import json
import threading
import time

import numpy as np
import pytest
from conftest import write_video

from aptrack.core import resources
from aptrack.core.errors import AptrackError, ConfigError, VideoError
from aptrack.core.instances import Instances
from aptrack.pipeline import Pipeline, load_pipeline, resolve_streams
from aptrack.runner import iter_frames, process_video
from aptrack.track import PoseTracker
from aptrack.track.config import TrackerConfig


class SquareDetector:
    """Finds the white square of conftest.write_video's frames (no network)."""

    def __call__(self, frame, frame_index):
        ys, xs = np.nonzero(frame[..., 0] > 128)
        if not len(xs):
            return Instances.empty(frame_index=frame_index)
        return Instances(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float), [0.9],
                         frame_index=frame_index)


def square_pipeline() -> Pipeline:
    return Pipeline(SquareDetector(), PoseTracker(TrackerConfig(min_hits=1)))


def test_iter_frames_tracks_each_frame_and_takes_given_boxes():
    frames = [(i, np.zeros((48, 64, 3), np.uint8)) for i in range(3)]
    for _, f in frames:
        f[10:20, 5:15] = 255
    pipe = square_pipeline()
    out = [tracked for _, _, tracked in iter_frames(pipe, frames)]
    assert [t.track_ids.tolist() for t in out] == [[1], [1], [1]]
    np.testing.assert_allclose(out[2].boxes_xyxy, [[5, 10, 15, 20]])
    # given boxes replace the detector (ground truth, or a user's first-frame boxes)
    pipe = square_pipeline()
    given = Instances(np.array([[30.0, 30.0, 40.0, 40.0]]), [1.0])
    out = [t for _, _, t in iter_frames(pipe, frames[:1], boxes=lambda i: given)]
    np.testing.assert_allclose(out[0].boxes_xyxy, given.boxes_xyxy)
    assert set(pipe.timer.seconds) >= {"read", "track"} and "detect" not in pipe.timer.seconds


def test_process_video_yields_frames_then_commits_outputs(tmp_path):
    video = write_video(tmp_path / "square.avi", 8)
    run = process_video(video, pipeline=square_pipeline(), output=tmp_path / "out", write_video=False)
    tracked = list(run)
    assert len(tracked) == 8 and all(t.track_ids.tolist() == [1] for t in tracked)
    assert [t.frame_index for t in tracked] == list(range(8))
    assert run.summary["frames"] == 8 and run.summary["tracks"] == 1
    saved = json.loads((tmp_path / "out" / "square.json").read_text())
    assert len(saved["annotations"]) == 8 and saved["summary"]["frames"] == 8


def test_a_run_stopped_early_leaves_nothing_under_a_final_name(tmp_path):
    video = write_video(tmp_path / "square.avi", 8)
    frames = iter(process_video(video, pipeline=square_pipeline(), output=tmp_path / "out"))
    next(frames)
    next(frames)
    frames.close()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_process_video_without_output_writes_nothing(tmp_path):
    video = write_video(tmp_path / "square.avi", 3)
    run = process_video(video, pipeline=square_pipeline())
    assert len(list(run)) == 3 and run.summary["outputs"] == {"json": None, "csv": None, "video": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["square.avi"]


def test_an_installed_package_reads_its_own_copy_of_the_resources(tmp_path, monkeypatch):
    packaged = tmp_path / "resources"
    (packaged / "pipelines").mkdir(parents=True)
    (packaged / "pipelines" / "default.yaml").write_text("name: default\ntracker: {min_hits: 7}\n")
    (packaged / "pipelines" / "lab.yaml").write_text("name: lab\ntracker: {track_buffer: 90}\n")
    monkeypatch.setattr(resources, "PACKAGE_DATA", packaged)
    assert resources.root() == packaged and resources.names("pipelines") == ["default", "lab"]
    lab = load_pipeline("lab")
    assert (lab.tracker.track_buffer, lab.tracker.min_hits, lab.base) == (90, 7, "default")
    with pytest.raises(ConfigError, match="unknown pipeline preset 'nosuch'; available: default, lab"):
        load_pipeline("nosuch")
    monkeypatch.setattr(resources, "CHECKOUT", tmp_path / "nowhere")
    monkeypatch.setattr(resources, "PACKAGE_DATA", tmp_path / "missing")
    with pytest.raises(ConfigError, match="data files are missing"):
        resources.root()


class BlinkingDetector(SquareDetector):
    """The square, missed on frames 3 and 4."""

    def __call__(self, frame, frame_index):
        if frame_index in (3, 4):
            return Instances.empty(frame_index=frame_index)
        return super().__call__(frame, frame_index)


def test_a_run_with_gap_filling_writes_the_missed_frames_marked_interpolated(tmp_path):
    from aptrack.track.interpolate import InterpolationConfig

    video = write_video(tmp_path / "square.avi", 8)
    pipe = Pipeline(BlinkingDetector(), PoseTracker(TrackerConfig(min_hits=1)),
                    interpolation=InterpolationConfig(max_gap=3))
    run = process_video(video, pipeline=pipe, output=tmp_path / "out", write_video=False)
    tracked = list(run)
    assert [len(t) for t in tracked] == [1] * 8 and [t.frame_index for t in tracked] == list(range(8))
    assert [bool(t.interpolated[0]) for t in tracked] == [False] * 3 + [True] * 2 + [False] * 3
    assert run.summary["interpolated"] == 2
    saved = json.loads((tmp_path / "out" / "square.json").read_text())
    assert [a["interpolated"] for a in saved["annotations"]] == [False] * 3 + [True] * 2 + [False] * 3
    rows = (tmp_path / "out" / "square.csv").read_text().splitlines()
    assert rows[0].split(",")[4] == "interpolated" and [r.split(",")[4] for r in rows[4:6]] == ["1", "1"]


class CountingDetector(SquareDetector):
    def __init__(self):
        self.frames = []

    def __call__(self, frame, frame_index):
        self.frames.append(frame_index)
        return super().__call__(frame, frame_index)


def scored_pose(low_on):
    """A pose stand-in: 3 keypoints at the box centre, scoring 0.9, or 0.1 on frames ``low_on``."""
    def pose(frame, animals):
        centre = 0.5 * (animals.boxes_xyxy[:, :2] + animals.boxes_xyxy[:, 2:])
        kp = np.repeat(centre[:, None], 3, axis=1)
        score = 0.1 if animals.frame_index in low_on else 0.9
        return animals.with_(keypoints=kp, keypoint_scores=np.full(kp.shape[:2], score))
    return pose


def test_det_every_auto_runs_the_detector_every_max_interval_frames_and_after_an_unsure_one():
    from aptrack.detect.config import CadenceConfig

    frames = [(i, np.zeros((48, 64, 3), np.uint8)) for i in range(12)]
    for i, f in frames:
        f[10:20, 5 + i:15 + i] = 255
    for low_on, expected in (((), [0, 5, 10]), ((2,), [0, 3, 8])):
        detector = CountingDetector()
        pipe = Pipeline(detector, PoseTracker(TrackerConfig(min_hits=1)), pose=scored_pose(low_on),
                        det_every="auto", cadence=CadenceConfig(max_interval=5, min_keypoint_score=0.5))
        out = [t for _, _, t in iter_frames(pipe, frames)]
        assert detector.frames == expected
        assert all(t.track_ids.tolist() == [1] for t in out)  # one id throughout
    with pytest.raises(AptrackError, match="whole number from 1, or auto"):
        Pipeline(CountingDetector(), PoseTracker(), det_every="sometimes")


def test_a_pipeline_reused_for_a_second_video_times_that_video_alone(tmp_path):
    pipe = square_pipeline()
    first = process_video(write_video(tmp_path / "long.avi", 40), pipeline=pipe, output=tmp_path / "out")
    list(first)
    second = process_video(write_video(tmp_path / "short.avi", 1), pipeline=pipe, output=tmp_path / "out")
    list(second)
    # the stages' time of the second video fits in its own run (it did not carry the first video's)
    assert sum(pipe.timer.seconds.values()) <= second.summary["seconds"]
    assert second.summary["frames"] == 1


class BatchingSquares(SquareDetector):
    """SquareDetector that also takes several frames at once, noting how many each time."""

    def __init__(self):
        self.windows = []

    def detect_many(self, frames):
        self.windows.append(len(frames))
        return [self(frame, index) for index, frame in frames]


def test_batched_frames_give_the_results_of_frames_one_at_a_time(tmp_path):
    video = write_video(tmp_path / "square.avi", 10)
    outs = {}
    for batch in (1, 4):
        detector = BatchingSquares()
        pipe = Pipeline(detector, PoseTracker(TrackerConfig(min_hits=1)))
        run = process_video(video, pipeline=pipe, output=tmp_path / f"b{batch}", write_video=False, batch_frames=batch)
        assert [t.frame_index for t in run] == list(range(10))
        outs[batch] = json.loads((tmp_path / f"b{batch}" / "square.json").read_text())["annotations"]
        assert detector.windows == ([] if batch == 1 else [4, 4, 2])
    assert outs[1] == outs[4] and len(outs[4]) == 10
    # frames whose detector depends on the tracker go one at a time: every second frame predicted
    detector = BatchingSquares()
    pipe = Pipeline(detector, PoseTracker(TrackerConfig(min_hits=1)), det_every=2)
    assert len(list(process_video(video, pipeline=pipe, batch_frames=4))) == 10 and detector.windows == []
    with pytest.raises(ConfigError, match="batch-frames"):
        process_video(video, pipeline=square_pipeline(), batch_frames=0)


class StreamSquares(SquareDetector):
    """SquareDetector that notes each call's frame and thread, and fails if two jobs use it at once."""

    def __init__(self, calls: list, fail_at: int | None = None):
        self.calls, self.fail_at, self.busy = calls, fail_at, False

    def __call__(self, frame, frame_index):
        assert not self.busy, "one stream used by two jobs at once"
        self.busy = True
        try:
            time.sleep(0.005)  # long enough for the other stream to start
            if frame_index == self.fail_at:
                raise VideoError(f"frame {frame_index} is broken")
            self.calls.append((frame_index, id(self), threading.current_thread().name))
            return super().__call__(frame, frame_index)
        finally:
            self.busy = False


def stream_pipeline(calls: list, streams: int, det_every: int = 1, fail_at: int | None = None) -> Pipeline:
    pipe = Pipeline(StreamSquares(calls, fail_at), PoseTracker(TrackerConfig(min_hits=1)), det_every=det_every)
    pipe.more_streams = [(StreamSquares(calls, fail_at), None) for _ in range(streams - 1)]
    return pipe


def test_streams_measure_frames_on_their_own_threads_with_the_results_of_one(tmp_path):
    video = write_video(tmp_path / "square.avi", 12)
    outs, calls = {}, {}
    for streams in (1, 2, 3):
        calls[streams] = []
        run = process_video(video, pipeline=stream_pipeline(calls[streams], streams), output=tmp_path / f"s{streams}",
                            write_video=False)
        assert [t.frame_index for t in run] == list(range(12))
        assert run.summary["streams"] == streams
        outs[streams] = json.loads((tmp_path / f"s{streams}" / "square.json").read_text())["annotations"]
    assert outs[1] == outs[2] == outs[3] and len(outs[1]) == 12
    assert {thread for _, _, thread in calls[1]} == {threading.current_thread().name}
    for streams in (2, 3):
        assert sorted(index for index, _, _ in calls[streams]) == list(range(12))
        assert len({detector for _, detector, _ in calls[streams]}) == streams  # every stream did some frames
        assert all(thread.startswith("aptrack-stream") for _, _, thread in calls[streams])
    # windows of --batch-frames go to the streams whole
    calls[4] = []
    run = process_video(video, pipeline=stream_pipeline(calls[4], 2), output=tmp_path / "w", write_video=False,
                        batch_frames=5)
    assert [t.frame_index for t in run] == list(range(12))
    assert json.loads((tmp_path / "w" / "square.json").read_text())["annotations"] == outs[1]


def test_streams_stay_off_where_the_detector_follows_the_tracker(tmp_path):
    video = write_video(tmp_path / "square.avi", 6)
    calls: list = []
    run = process_video(video, pipeline=stream_pipeline(calls, 2, det_every=2), write_video=False)
    assert len(list(run)) == 6 and run.summary["streams"] == 1
    assert {thread for _, _, thread in calls} == {threading.current_thread().name}


def test_an_error_in_a_stream_ends_the_run_at_its_frame_and_stops_the_threads(tmp_path):
    video = write_video(tmp_path / "square.avi", 12)
    before = threading.active_count()
    run = process_video(video, pipeline=stream_pipeline([], 2, fail_at=7), output=tmp_path / "out", write_video=False)
    seen = []
    with pytest.raises(VideoError, match="frame 7 is broken"):
        for tracked in run:
            seen.append(tracked.frame_index)
    assert seen == list(range(7))  # every frame before the broken one was tracked, in order
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == []
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_auto_streams_are_two_on_a_cpu_with_two_cores_and_one_on_a_gpu():
    assert resolve_streams("auto", "cpu", cores=2) == 2
    assert resolve_streams("auto", "cpu", cores=16) == 2
    assert resolve_streams("auto", "cpu", cores=1) == 1
    assert resolve_streams("auto", "cuda", cores=16) == 1
    assert resolve_streams(3, "cuda") == 3
    for bad in (0, -1, "two", True, 1.5):
        with pytest.raises(AptrackError, match="--streams"):
            resolve_streams(bad, "cpu")

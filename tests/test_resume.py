"""Resuming an interrupted run: the finished outputs are those of a run that was never stopped."""

import dataclasses
import json
import logging
import os
import re
import signal

import cv2
import numpy as np
import pytest

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.core.layout import load_layout
from aptrack.core.statefile import StateFileError, decode, encode, read_state
from aptrack.io.journal import RunJournal, journal_folder
from aptrack.pipeline import Pipeline, load_pipeline
from aptrack.runner import process_video
from aptrack.track import PoseTracker
from aptrack.track.config import TrackerConfig
from aptrack.track.interpolate import InterpolationConfig
from aptrack.track.smooth import SmoothingConfig

LAYOUT = load_layout("ap10k")
FRAMES = 40
EVERY = 8
EXPORTS = "json,csv,mp4,mot,dlc,slp"
TIMING = ("seconds", "fps", "ms_per_frame", "streams")


def two_squares(path, frames=FRAMES):
    """Two white squares crossing a 96x96 frame; the second is hidden on frames 17-19 (a gap to fill)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 96))
    for i in range(frames):
        img = np.zeros((96, 96, 3), np.uint8)
        img[10:22, 2 + i:14 + i] = 255
        if not 17 <= i <= 19:
            img[60:74, 80 - i:94 - i] = 255
        writer.write(img)
    writer.release()
    return path


class SquaresWithPoses:
    """Each square's box, with 17 keypoints on it that wobble from frame to frame (for the smoother)."""

    def __call__(self, frame, frame_index):
        n, _, stats, _ = cv2.connectedComponentsWithStats((frame[..., 0] > 128).astype(np.uint8))
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:]], float).reshape(-1, 4)
        k = LAYOUT.num_keypoints
        q = np.arange(k, dtype=float)
        wobble = 1.5 * np.sin(0.7 * frame_index + q)
        kp = boxes[:, None, :2] + np.stack([q * 0.6 + wobble, 0.5 * q], axis=1)[None]
        return Instances(boxes, np.full(len(boxes), 0.9), keypoints=kp,
                         keypoint_scores=np.tile(0.5 + q / 100, (len(boxes), 1)), frame_index=frame_index)


CONFIG = dataclasses.replace(load_pipeline("default"), smoothing=SmoothingConfig(kind="one-euro"),
                             interpolation=InterpolationConfig(max_gap=5))


def pipeline(streams=1):
    pipe = Pipeline(SquaresWithPoses(), PoseTracker(TrackerConfig(min_hits=1)), layout=LAYOUT,
                    interpolation=CONFIG.interpolation)
    pipe.more_streams = [(SquaresWithPoses(), None) for _ in range(streams - 1)]
    return pipe


def run(video, out, stop_after=None, resume=False, config=CONFIG, streams=1, **kw):
    """The run of ``video`` into ``out`` (``streams`` detector streams); stopped (a break, as a
    killed process leaves it) after ``stop_after`` frames when given. Returns the frames it
    yielded; ``run.saved`` is the :class:`~aptrack.io.journal.SavedRun` the last one resumed from."""
    video_run = process_video(video, pipeline=pipeline(streams), config=config, output=out, exports=EXPORTS,
                              trails=True, resume=resume, checkpoint_every=EVERY, **kw)
    run.saved = video_run.saved
    frames = iter(video_run)
    got = []
    try:
        for tracked in frames:
            got.append(tracked)
            if stop_after is not None and len(got) >= stop_after:
                break
    finally:
        frames.close()
    return got


def outputs(out, same_time=False):
    """Every output file's content: bytes, the JSON's summary without its timings (and the folder's
    name), the video's frames. Unless ``same_time``, the JSON's creation time is left out too."""
    found = {}
    for path in sorted(out.iterdir()):
        if path.name.startswith("."):
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            head, _, tail = data.replace(str(out).encode(), b"OUT").partition(b'"summary": ')
            summary = {k: v for k, v in json.loads(tail.rstrip()[:-1]).items() if k not in TIMING}
            if not same_time:
                head = re.sub(rb'"created": "[^"]*"', b"", head)
            found[path.name] = (head, summary)
        elif path.suffix == ".mp4":
            cap = cv2.VideoCapture(str(path))
            frames = []
            ok, frame = cap.read()
            while ok:
                frames.append(frame)
                ok, frame = cap.read()
            cap.release()
            found[path.name] = np.stack(frames)
        else:
            found[path.name] = data
    return found


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], np.ndarray):
            assert a[name].shape == b[name].shape, name
            assert np.array_equal(a[name], b[name]), name
        else:
            assert a[name] == b[name], name


@pytest.fixture
def straight(tmp_path):
    """The video, and the outputs of its run from start to end."""
    video = two_squares(tmp_path / "sq.avi")
    frames = run(video, tmp_path / "straight")
    assert len(frames) == FRAMES
    return video, outputs(tmp_path / "straight"), frames


def test_an_uninterrupted_run_writes_the_same_files_twice(straight, tmp_path):
    video, expected, _ = straight
    run(video, tmp_path / "again")
    assert_same(outputs(tmp_path / "again"), expected)
    assert sorted(expected) == ["sq.csv", "sq.json", "sq.mp4", "sq.slp", "sq_dlc.csv", "sq_dlc.h5", "sq_mot.txt"]
    head, summary = expected["sq.json"]
    assert summary["frames"] == FRAMES and summary["interpolated"] == 3  # the hidden square's gap, filled
    assert not journal_folder(tmp_path / "again", "sq").exists()  # a finished run leaves no journal


# (frames yielded when stopped, frames the resumed run takes from the saved results): results come
# max_gap = 5 frames behind the frame being processed, and a state is saved every 8 frames
@pytest.mark.parametrize("stop_after, saved", [(3, None), (EVERY, 3), (13, 11), (30, 27)])
def test_a_run_stopped_anywhere_and_resumed_writes_the_files_of_an_uninterrupted_run(straight, tmp_path, stop_after,
                                                                                       saved):
    video, expected, frames = straight
    out = tmp_path / "out"
    run(video, out, stop_after=stop_after)
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # nothing under a final name
    resumed = run(video, out, resume=True)
    assert (run.saved and run.saved.frames_saved) == saved  # None: stopped before the first state
    assert_same(outputs(out), expected)
    # the resumed run yields every frame too, the saved ones first
    assert [t.frame_index for t in resumed] == list(range(FRAMES))
    for a, b in zip(resumed, frames):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.track_ids, b.track_ids)
    assert not journal_folder(out, "sq").exists()


@pytest.mark.parametrize("streams", [2, 3])
def test_a_run_on_several_streams_stopped_and_resumed_writes_the_files_of_one_stream(straight, tmp_path, streams):
    video, expected, _ = straight
    out = tmp_path / "out"
    run(video, out, stop_after=13, streams=streams)  # frames measured ahead are not in the saved state
    run(video, out, resume=True, streams=streams)
    assert run.saved.frames_saved == 11 and run.saved.state["next_frame"] == 16
    assert_same(outputs(out), expected)
    assert json.loads((out / "sq.json").read_text())["summary"]["streams"] == streams


def test_a_resumed_run_without_the_video_skips_to_the_first_frame_not_processed(tmp_path):
    video = two_squares(tmp_path / "sq.avi")
    kw = {"write_video": False}
    out = tmp_path / "out"
    run(video, out, stop_after=21, **kw)
    saved = RunJournal(journal_folder(out, "sq"), {}).states()
    # 26 frames processed (21 yielded, 5 held for gap filling): saved at 8, 16 and 24, the newest two kept
    assert [p.name for p in saved] == ["state-000003.bin", "state-000002.bin"]
    began = read_state(saved[0])["state"]["created"]
    run(video, out, resume=True, **kw)
    assert run.saved.state["next_frame"] == 24 and run.saved.frames_saved == 19
    run(video, tmp_path / "straight", **kw)
    assert_same(outputs(out), outputs(tmp_path / "straight"))
    # the resumed outputs keep the time the run began
    assert json.loads((out / "sq.json").read_text())["info"]["created"] == began


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_after_the_frame_with_its_state_saved(straight, tmp_path, sig):
    class Stopped(Exception):
        pass

    def on_term(signum, frame):
        raise Stopped()

    video, expected, _ = straight
    out = tmp_path / "out"
    previous = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C's own handler, whatever an earlier test's library (Ray's workers, say) left installed
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        frames = iter(process_video(video, pipeline=pipeline(), config=CONFIG, output=out, exports=EXPORTS,
                                    trails=True, checkpoint_every=100))
        seen = 0
        with pytest.raises(KeyboardInterrupt if sig == signal.SIGINT else Stopped):
            for _ in frames:
                seen += 1
                if seen == 11:
                    signal.raise_signal(sig)  # arrives while the run waits for this frame to be taken
        assert signal.getsignal(signal.SIGTERM) is on_term  # the run's own handler is gone again
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    # no periodic checkpoint was due (every 100 frames): the signal saved this one
    state = read_state(RunJournal(journal_folder(out, "sq"), {}).states()[0])
    assert state["state"]["next_frame"] == 11 + CONFIG.interpolation.max_gap
    run(video, out, resume=True)
    assert_same(outputs(out), expected)


def test_an_interruption_between_the_two_writes_of_a_checkpoint_resumes_from_the_one_before(
        straight, tmp_path, monkeypatch):
    video, expected, _ = straight
    out = tmp_path / "out"
    calls = []
    real = RunJournal.write_state

    def cut(self, seq, tree):
        calls.append(seq)
        if seq == 2:  # the chunk of results is written; the state naming it is not
            raise KeyboardInterrupt
        real(self, seq, tree)

    monkeypatch.setattr(RunJournal, "write_state", cut)
    with pytest.raises(KeyboardInterrupt):
        run(video, out)
    monkeypatch.setattr(RunJournal, "write_state", real)
    folder = journal_folder(out, "sq")
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-000001.bin", "chunk-000002.bin", "state-000001.bin"]
    run(video, out, resume=True)
    assert run.saved.seq == 1
    assert_same(outputs(out), expected)


def test_a_state_file_cut_in_half_is_passed_over_for_the_one_before(straight, tmp_path, caplog):
    video, expected, _ = straight
    out = tmp_path / "out"
    run(video, out, stop_after=30)
    newest, older = RunJournal(journal_folder(out, "sq"), {}).states()
    data = newest.read_bytes()
    newest.write_bytes(data[:len(data) // 2])
    with pytest.raises(StateFileError):
        read_state(newest)
    with caplog.at_level(logging.WARNING, logger="aptrack"):
        run(video, out, resume=True)
    assert f"{newest.name} is damaged" in caplog.text and run.saved.seq == int(older.stem.split("-")[1])
    assert_same(outputs(out), expected)


def test_every_state_damaged_starts_the_run_afresh_never_from_garbage(straight, tmp_path, caplog):
    video, expected, _ = straight
    out = tmp_path / "out"
    run(video, out, stop_after=30)
    for path in RunJournal(journal_folder(out, "sq"), {}).states():
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="aptrack"):
        resumed = run(video, out, resume=True)
    assert "starting from the first frame" in caplog.text
    assert len(resumed) == FRAMES
    assert_same(outputs(out), expected)


def test_resuming_with_another_config_or_a_changed_video_is_refused_with_what_differs(straight, tmp_path):
    video, _, _ = straight
    out = tmp_path / "out"
    run(video, out, stop_after=20)
    other = dataclasses.replace(CONFIG, smoothing=SmoothingConfig(kind="one-euro", beta=0.2))
    with pytest.raises(ConfigError, match=r"config\.smoothing\.beta: 0\.05 -> 0\.2.*without --resume"):
        run(video, out, resume=True, config=other)
    with pytest.raises(ConfigError, match=r"options\.start: 0 -> 2"):
        run(video, out, resume=True, start=2)
    stat = os.stat(video)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    with pytest.raises(ConfigError, match=r"input\.mtime_ns"):
        run(video, out, resume=True)
    # a new run without --resume replaces the saved one
    assert len(run(video, out)) == FRAMES and not journal_folder(out, "sq").exists()


def test_resume_refuses_a_run_that_follows_init_boxes(tmp_path):
    video = two_squares(tmp_path / "sq.avi", 5)
    boxes = Instances(np.array([[2.0, 10, 14, 22]]), [1.0], track_ids=[1])
    with pytest.raises(ConfigError, match="--init-boxes"):
        process_video(video, pipeline=pipeline(), output=tmp_path / "o", init_boxes=boxes, resume=True)


def test_state_files_round_trip_values_exactly_and_refuse_damage():
    shared = Instances(np.array([[1.5, 2, 3, 4]]), [0.25], categories=["dog"], track_ids=[7], frame_index=3)
    tree = {"ints": [0, -1, 2 ** 70], "floats": (0.1, float("nan"), -float("inf")), "flag": True, "none": None,
            "by_id": {4: ("a", np.float32(0.5))}, "array": np.arange(6, dtype=np.int16).reshape(2, 3),
            "same": [shared, shared]}
    back = decode(encode(tree))
    assert back["ints"] == [0, -1, 2 ** 70] and back["floats"][0] == 0.1 and np.isnan(back["floats"][1])
    assert back["floats"][2] == -float("inf") and back["flag"] is True and back["none"] is None
    assert back["by_id"] == {4: ("a", np.float32(0.5))} and back["by_id"][4][1].dtype == np.float32
    assert back["array"].dtype == np.int16 and back["array"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["array"].flags.writeable
    a, b = back["same"]
    assert a is b and a.categories.tolist() == ["dog"] and a.frame_index == 3 and a.track_ids.tolist() == [7]
    data = encode(tree)
    for damaged in (data[:-1], data[: len(data) // 2], b"PK" + data[2:], data[:40] + bytes([data[40] ^ 1]) + data[41:]):
        with pytest.raises(StateFileError):
            decode(damaged)
    with pytest.raises(TypeError, match="cannot hold"):
        encode({"f": lambda: 0})
    with pytest.raises(TypeError, match="numeric arrays"):
        encode(np.array(["a"], dtype=object))


def test_a_full_disk_while_saving_the_state_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import errno

    from aptrack.core import statefile
    from aptrack.core.errors import OutputError

    video = two_squares(tmp_path / "sq.avi")
    out = tmp_path / "out"
    real = statefile.os.fsync
    calls = []

    def full(fd):
        calls.append(fd)
        if len(calls) >= 5:  # file, folder, file, folder: then the second checkpoint's chunk, on a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(statefile.os, "fsync", full)
    with pytest.raises(OutputError, match=r"cannot save the run's state to .*chunk-000002\.bin: No space left on device"):
        run(video, out)
    monkeypatch.setattr(statefile.os, "fsync", real)
    assert not [p for p in out.rglob("*") if "incomplete" in p.name]  # temporary files removed
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # nothing under a final name
    assert sorted(p.name for p in journal_folder(out, "sq").iterdir()) == ["chunk-000001.bin", "state-000001.bin"]
    run(video, out, resume=True)  # room again: the first state still resumes
    assert run.saved.seq == 1


def test_an_image_folder_resumes_from_the_image_after_the_saved_state(tmp_path):
    video = two_squares(tmp_path / "sq.avi", 20)
    folder = tmp_path / "sq"
    folder.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(20):
        ok, frame = cap.read()
        cv2.imwrite(str(folder / f"img{i}.png"), frame)  # natural order: img2 before img10
    cap.release()
    kw = {"write_video": False}
    run(folder, tmp_path / "straight", **kw)
    out = tmp_path / "out"
    run(folder, out, stop_after=12, **kw)
    run(folder, out, resume=True, **kw)
    assert run.saved.state["next_frame"] == 16  # 17 images processed, saved at 8 and 16
    assert_same(outputs(out), outputs(tmp_path / "straight"))
    assert json.loads((out / "sq.json").read_text())["summary"]["frames"] == 20

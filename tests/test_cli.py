"""The CLI end to end: the real dog clip, and every bad-input case."""

import json
import signal
import subprocess
import sys

import cv2
import pytest
from conftest import write_video

from aptrack.cli import main


def run(capsys, *args):
    code = main(["run", *map(str, args), "--quiet", "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("aptrack: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def finals(out_dir):
    return sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")) if out_dir.exists() else []


# -- the real clip ------------------------------------------------------------

def test_dog_clip_end_to_end_keeps_one_id(dog_clip, mirror, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", str(dog_clip), "-o", str(out), "--device", "cpu", "--trails"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "no pose weights" not in captured.err  # the default preset has a trained pose model
    assert "tracks (ids)" in captured.out
    assert finals(out) == ["dog_clip.csv", "dog_clip.json", "dog_clip.mp4"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []

    data = json.loads((out / "dog_clip.json").read_text())
    anns = data["annotations"]
    assert {a["track_id"] for a in anns} == {1}
    frames = {a["frame"] for a in anns}
    assert len(frames) >= 0.9 * 296 and len(anns) == len(frames)
    assert data["info"]["models"]["detector"]["sha256"] == \
        "83de8f0d2cd521e00ae2b138c340a03dece35b060b3898509bdc69afff417312"
    x, y, w, h = anns[0]["bbox"]
    assert 80 < x < 140 and 150 < y < 210 and w > 80 and h > 100  # the dog, bottom left

    # real keypoints from the default model: the nose lies in the upper part of the dog's box
    names = data["info"]["keypoint_names"]
    assert len(names) == 17 and data["info"]["models"]["pose"]["layout"] == "ap10k"
    assert all(len(a["keypoints"]) == 17 * 3 for a in anns)
    nose = names.index("nose")
    on_head = [bx <= a["keypoints"][3 * nose] <= bx + bw and by <= a["keypoints"][3 * nose + 1] <= by + 0.6 * bh
               for a in anns for bx, by, bw, bh in [a["bbox"]]]
    assert sum(on_head) >= 0.9 * len(anns)
    assert data["summary"]["frames"] == 296 and data["summary"]["tracks"] == 1

    rows = (out / "dog_clip.csv").read_text().strip().splitlines()
    assert rows[0].startswith("frame,track_id,category,score,interpolated,x1,y1,x2,y2,left_eye_x,left_eye_y")
    assert len(rows) == len(anns) + 1

    cap = cv2.VideoCapture(str(out / "dog_clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 296
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (350, 370)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    cap.release()


def test_pose_range_and_det_every(dog_clip, mirror, tmp_path, capsys, random_pose_checkpoint):
    """Plumbing with an untrained checkpoint given explicitly: keypoints flow to the json."""
    out = tmp_path / "out"
    code, err = run(capsys, dog_clip, "-o", out, "--pose", random_pose_checkpoint,
                    "--start", 100, "--end", 112, "--det-every", 3, "--no-video")
    assert code == 0, err
    assert finals(out) == ["dog_clip.csv", "dog_clip.json"]
    data = json.loads((out / "dog_clip.json").read_text())
    assert data["info"]["keypoint_names"][3] == "neck"
    assert data["info"]["models"]["pose"]["source"] == "path"
    anns = data["annotations"]
    assert sorted({a["frame"] for a in anns}) == list(range(100, 112))
    assert all(len(a["keypoints"]) == 17 * 3 for a in anns)
    a = anns[0]
    bx, by, bw, bh = a["bbox"]
    xs, ys = a["keypoints"][0::3], a["keypoints"][1::3]
    # keypoints land inside the square crop around the box, 1.25 x its longer side
    half = 0.625 * max(bw, bh) + 1
    cx, cy = bx + bw / 2, by + bh / 2
    assert all(abs(x - cx) <= half for x in xs) and all(abs(y - cy) <= half for y in ys)


# -- bad input --------------------------------------------------------------------

def test_missing_video(tmp_path, capsys):
    code, err = run(capsys, tmp_path / "nope.mp4", "-o", tmp_path / "out")
    assert_one_line_error(code, err, "video not found", "nope.mp4")
    assert finals(tmp_path / "out") == []


def test_not_a_video(tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    code, err = run(capsys, fake, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "cannot read", "notes.mp4")


def test_zero_frame_video(tmp_path, capsys):
    empty = write_video(tmp_path / "empty.avi", frames=0)
    code, err = run(capsys, empty, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "empty.avi")
    assert finals(tmp_path / "out") == []


def test_pose_none_runs_detection_and_tracking_only(dog_clip, mirror, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(capsys, dog_clip, "-o", out, "--pose", "none", "--end", 5, "--no-video")
    assert code == 0, err
    assert "running detection + tracking only" in err
    data = json.loads((out / "dog_clip.json").read_text())
    assert data["info"]["keypoint_names"] == [] and data["annotations"][0]["keypoints"] == []


def test_truncated_video_leaves_no_final_outputs(mirror, tmp_path, capsys):
    full = write_video(tmp_path / "full.avi", frames=40)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "out"
    code, err = run(capsys, cut, "-o", out, "--pose", "none")
    assert_one_line_error(code, err, "truncated", "cut.avi")
    assert list(out.iterdir()) == []  # nothing, not even the temporary files


def test_unwritable_output_folder(tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", frames=3)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run(capsys, video, "-o", blocker / "out")
    assert_one_line_error(code, err, "cannot write to output folder")


def test_corrupt_detector_weights_file(tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", frames=3)
    for name in ("bad.onnx", "bad.pt"):
        bad = tmp_path / name
        bad.write_bytes(b"\x00garbage" * 100)
        code, err = run(capsys, video, "-o", tmp_path / "out", "--detector", bad)
        assert_one_line_error(code, err, "cannot load detector weights", name)
        assert finals(tmp_path / "out") == []


def test_corrupt_registry_weights_in_mirror(tmp_path, capsys, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "weights").mkdir(parents=True)
    (mirror / "weights" / "yolov8n_int8.onnx").write_bytes(b"truncated download")
    monkeypatch.setenv("APTRACK_MIRROR", str(mirror))
    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    video = write_video(tmp_path / "v.avi", frames=3)
    code, err = run(capsys, video, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "corrupt", "83de8f0d2cd521e0", "yolov8n_int8.onnx")


def test_corrupt_pose_weights(mirror, tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", frames=3)
    bad = tmp_path / "pose.pt"
    bad.write_bytes(b"nope")
    code, err = run(capsys, video, "-o", tmp_path / "out", "--pose", bad)
    assert_one_line_error(code, err, "pose weights", "pose.pt")


def test_bad_preset(tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", frames=3)
    code, err = run(capsys, video, "-o", tmp_path / "out", "--pipeline", "nonexistent")
    assert_one_line_error(code, err, "unknown pipeline preset")


def test_process_exit_status_and_no_traceback(tmp_path):
    """The installed entry point, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "aptrack", "run", str(tmp_path / "missing.avi")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"aptrack: error: video not found: {tmp_path / 'missing.avi'}"]


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_stops_a_run_like_ctrl_c_with_nothing_under_a_final_name(dog_clip, mirror, tmp_path, sig, code, word):
    import os
    import time

    out = tmp_path / "out"
    log = tmp_path / "run.log"
    args = ["run", str(dog_clip), "-o", str(out), "-q", "--end", "60", "--checkpoint-every", "10"]
    proc = subprocess.Popen([sys.executable, "-m", "aptrack", *args, "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "APTRACK_MIRROR": str(mirror)},
                            # as a terminal's run has it: a test suite started in the background by a
                            # shell inherits SIGINT ignored, which a child would inherit in turn
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    # frames are being processed, and the first state has been saved
    while time.monotonic() < deadline and not list(out.glob(".dog_clip.resume/state-*.bin")):
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"aptrack: {word}") and last.endswith("with --resume continues it")
    assert "Traceback" not in stderr and "its state saved" in stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []
    assert [p.name for p in out.iterdir()] == [".dog_clip.resume"]  # the temporary files were removed
    text = log.read_text()
    assert "aptrack run" in text and word in text
    if sig == signal.SIGTERM:  # resumed, the outputs are those of a run never stopped
        from test_resume import assert_same, outputs

        assert main([*args, "--resume"]) == 0
        assert main(["run", str(dog_clip), "-o", str(tmp_path / "straight"), *args[4:]]) == 0
        assert_same(outputs(out), outputs(tmp_path / "straight"))
        assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_log_file_keeps_info_lines_and_the_error_while_the_console_shows_one_line(tmp_path, capsys):
    log = tmp_path / "a.log"
    bad = tmp_path / "bad.json"
    bad.write_text('{"annotations": [{"score": 1}]}')
    code = main(["track", "--detections", str(bad), "-o", str(tmp_path / "o.json"), "--log", str(log)])
    assert_one_line_error(code, capsys.readouterr().err, "lacks 'bbox'")
    lines = log.read_text().splitlines()
    assert any("ERROR" in ln and "lacks 'bbox'" in ln for ln in lines)
    assert lines[0].split(" INFO ")[1].startswith("aptrack.cli: aptrack ")
    code = main(["track", "--detections", str(bad), "-o", str(tmp_path / "o.json"),
                 "--log", str(tmp_path / "no" / "a.log")])
    assert_one_line_error(code, capsys.readouterr().err, "cannot write the log file")


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    import errno
    import json as json_module
    from pathlib import Path

    dets = tmp_path / "dets.json"
    dets.write_text(json_module.dumps([{"image_id": t, "bbox": [10, 10, 20, 20], "score": 0.9} for t in range(5)]))
    real_write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if ".incomplete" in self.name:
            real_write_text(self, "partial")  # some bytes land before the disk fills
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    out = tmp_path / "out"
    out.mkdir()
    code = main(["track", "--detections", str(dets), "-o", str(out / "t.json")])
    assert_one_line_error(code, capsys.readouterr().err, "cannot write", "No space left on device")
    assert list(out.iterdir()) == []


def test_a_read_only_output_folder_is_one_line_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    import errno
    import os
    import tempfile as tempfile_module

    video = write_video(tmp_path / "v.avi", 3)
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() != 0:  # a real read-only folder (root writes through permissions, so it is injected there)
        out.chmod(0o555)
    else:
        real = tempfile_module.NamedTemporaryFile

        def read_only(*args, dir=None, **kwargs):
            if dir is not None and os.path.samefile(dir, out):
                raise OSError(errno.EROFS, "Read-only file system")
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile_module, "NamedTemporaryFile", read_only)
    try:
        code, err = run(capsys, video, "-o", out, "--pose", "none")
        assert_one_line_error(code, err, "cannot write to output folder", str(out))
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


def test_two_streams_on_the_dog_clip_give_the_keypoints_of_one(dog_clip, mirror, tmp_path):
    from aptrack.pipeline import build_pipeline, load_pipeline
    from aptrack.runner import process_video

    config = load_pipeline("default")
    two, _ = build_pipeline(config, "cpu", 1, streams=2)
    assert len(two.streams) == 2
    for detector, pose in two.streams:  # each stream's networks on one thread of the two cores
        assert pose.model.session.get_session_options().intra_op_num_threads == 1
    first = two.streams[0][0]
    assert two.streams[1][0] is not first and two.streams[1][1].model is not two.streams[0][1].model
    one, _ = build_pipeline(config, "cpu", 1, streams=1)
    found = {}
    for name, pipe in (("one", one), ("two", two)):
        run = process_video(dog_clip, pipeline=pipe, config=config, output=tmp_path / name, end=30, write_video=False)
        assert len(list(run)) == 30
        found[name] = json.loads((tmp_path / name / "dog_clip.json").read_text())
        assert found[name]["summary"]["streams"] == len(pipe.streams)
    assert found["one"]["annotations"] == found["two"]["annotations"] and len(found["one"]["annotations"]) >= 27
    backend = first.model.predictor.model  # set up by the first frame, then given one thread
    session = getattr(backend, "backend", backend).session
    assert session.get_session_options().intra_op_num_threads == 1


def test_streams_takes_a_whole_number_from_one_or_auto(tmp_path, capsys):
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as stop:
            main(["run", str(tmp_path / "any.avi"), "--streams", bad])
        assert stop.value.code == 2
        assert "argument --streams" in capsys.readouterr().err

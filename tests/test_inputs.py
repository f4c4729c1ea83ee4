"""What aptrack run takes: files, folders, globs and image folders, each a named output set."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_video

from aptrack.cli import main
from aptrack.core.errors import VideoError
from aptrack.io.inputs import ImageSequenceReader, expand_inputs, unique_stems


def _images(folder, n, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in (10, 2, 1)[:n]:
        img = np.full((size[1], size[0], 3), i, np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), img)
    return folder


def test_folders_are_searched_recursively_and_image_folders_are_sequences(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    write_video(tmp_path / "a" / "v.avi", 2)
    write_video(tmp_path / "b" / "v.avi", 2)
    write_video(tmp_path / "b" / "w.avi", 2)
    (tmp_path / "b" / "notes.txt").write_text("not a video")
    _images(tmp_path / "b" / "frames", 3)
    inputs, bad = expand_inputs([str(tmp_path)])
    assert bad == []
    assert [i.stem for i in inputs] == ["a_v", "b_v", "w", "frames"]
    frames = inputs[-1]
    assert frames.is_images and [p.name for p in frames.images] == ["img1.png", "img2.png", "img10.png"]
    alone, _ = expand_inputs([str(tmp_path / "b" / "frames")], images_as="independent")
    assert [i.stem for i in alone] == ["img1", "img2", "img10"]


def test_globs_missing_paths_and_repeats(tmp_path):
    write_video(tmp_path / "x1.avi", 2)
    write_video(tmp_path / "x2.avi", 2)
    inputs, bad = expand_inputs([str(tmp_path / "x*.avi"), str(tmp_path / "x1.avi"), str(tmp_path / "nope.avi"),
                                 str(tmp_path / "z*.mp4")])
    assert [i.stem for i in inputs] == ["x1", "x2"]
    assert [b.reason for b in bad] == [f"not found: {tmp_path / 'nope.avi'}", "no file matches this pattern"]


def test_unique_stems_add_parent_folders_only_where_names_collide(tmp_path):
    from pathlib import Path
    paths = [Path("/d/day1/cam/rec.mp4"), Path("/d/day2/cam/rec.mp4"), Path("/d/day2/other.mp4")]
    assert unique_stems(paths) == ["day1_cam_rec", "day2_cam_rec", "other"]
    assert unique_stems([Path("/a/rec.mp4"), Path("/a/rec.avi")]) == ["rec", "rec-2"]


def test_image_sequence_reader_reads_in_order_and_refuses_a_size_change(tmp_path):
    folder = _images(tmp_path / "f", 3)
    inputs, _ = expand_inputs([str(folder)])
    reader = ImageSequenceReader(inputs[0].images, start=1)
    assert (reader.width, reader.height, reader.expected_frames) == (40, 30, 2)
    assert [(i, int(f[0, 0, 0])) for i, f in reader] == [(1, 2), (2, 10)]
    cv2.imwrite(str(folder / "img2.png"), np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(VideoError, match="the sequence's first image"):
        list(ImageSequenceReader(inputs[0].images))


def test_run_over_a_folder_goes_on_past_a_bad_video_and_lists_it(tmp_path, capsys, mirror):
    data = tmp_path / "data"
    for folder in ("day1", "day2"):
        (data / folder).mkdir(parents=True)
    write_video(data / "day1" / "rec.avi", 3)
    write_video(data / "day2" / "rec.avi", 4)
    (data / "day2" / "broken.avi").write_text("not a video\n" * 20)
    _images(data / "day2" / "stills", 2, size=(64, 48))
    out = tmp_path / "out"
    code = main(["run", str(data), "-o", str(out), "--pose", "none", "--no-video", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 2  # one input failed
    assert sorted(p.name for p in out.iterdir()) == [
        "day1_rec.csv", "day1_rec.json", "day2_rec.csv", "day2_rec.json", "stills.csv", "stills.json"]
    assert json.loads((out / "day2_rec.json").read_text())["summary"]["frames"] == 4
    assert json.loads((out / "stills.json").read_text())["info"]["images"] == 2
    assert "3 done, 1 failed" in printed and "FAILED" in printed and "broken.avi" in printed


def test_output_names_from_odd_input_names_stay_plain_files_inside_the_output_folder(tmp_path):
    from aptrack.io.inputs import safe_stem

    paths = [Path("../../etc/x.avi"), Path("..avi"), Path(".hidden.mp4"), Path("we ird\nname;rm -rf.mp4"),
             Path("/abs/chien été.mkv")]
    stems = unique_stems(paths)
    assert stems == ["x", "input", "hidden", "we_ird_name_rm_-rf", "chien_été"]
    for stem in stems:
        assert "/" not in stem and not stem.startswith(".") and (tmp_path / stem).parent == tmp_path
    assert safe_stem("..") == "input" and safe_stem("a/../b") == "a_.._b"

"""Fixing identities after the fact: swaps from a frame on, merges, and what they refuse."""

import json

import numpy as np
import pytest

from aptrack.cli import main
from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.track.relabel import merge_ids, swap_ids


def _frames(ids_per_frame):
    out = []
    for f, ids in enumerate(ids_per_frame):
        boxes = np.array([[10.0 * t, 0, 10.0 * t + 5, 5] for t in ids]).reshape(-1, 4)
        out.append(Instances(boxes, np.ones(len(ids)), track_ids=ids, frame_index=f))
    return out


def test_swap_exchanges_two_ids_from_a_frame_on_and_leaves_the_input_alone():
    frames = _frames([[1, 2], [1, 2], [1, 2], [1, 2]])
    out = swap_ids(frames, 1, 2, start=2)
    assert [f.track_ids.tolist() for f in out] == [[1, 2]] * 4  # rows stay listed by id
    # the boxes moved with the swap: from frame 2 the animal at x=10 is id 2
    assert [float(f.boxes_xyxy[f.track_ids == 2][0, 0]) for f in out] == [20.0, 20.0, 10.0, 10.0]
    assert frames[2].boxes_xyxy[frames[2].track_ids == 2][0, 0] == 20.0
    assert [float(f.boxes_xyxy[f.track_ids == 2][0, 0]) for f in swap_ids(frames, 1, 2, 1, 3)] == [20, 10, 10, 20]


def test_merge_renames_an_id_and_refuses_two_animals_on_one_frame():
    out = merge_ids(_frames([[1], [1], [7], [7]]), 7, 1)
    assert [f.track_ids.tolist() for f in out] == [[1]] * 4
    with pytest.raises(ConfigError, match="both on frame"):
        merge_ids(_frames([[1, 7]]), 7, 1)
    with pytest.raises(ConfigError, match="no track 9"):
        swap_ids(_frames([[1, 2]]), 1, 9)


def test_relabel_command_writes_a_new_file_and_a_missing_id_is_one_line(tmp_path, capsys):
    from aptrack.io.convert import write_results

    src = tmp_path / "run.json"
    write_results(src, {"keypoint_names": []}, _frames([[1, 2], [1, 2], [1, 2]]))
    before = src.read_bytes()
    assert main(["relabel", str(src), "-o", str(tmp_path / "fixed.json"), "--swap", "1", "2", "--from", "1"]) == 0
    recs = json.loads((tmp_path / "fixed.json").read_text())["annotations"]
    by_frame = {(r["frame"], r["track_id"]): r["bbox"][0] for r in recs}
    assert by_frame[(0, 1)] == 10.0 and by_frame[(1, 1)] == 20.0 and by_frame[(2, 2)] == 10.0
    assert src.read_bytes() == before
    assert main(["relabel", str(src), "-o", str(tmp_path / "x.json"), "--merge", "5", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["aptrack: error: no track 5 in these results (ids: 1, 2)"]
    assert not (tmp_path / "x.json").exists()


def test_speeds_are_pixels_per_second_between_observations():
    from aptrack.eval.trajectories import speeds, track_table

    frames = _frames([[1], [1], [], [1]])  # the same box every frame: speed 0
    frames[3] = frames[3].with_(boxes_xyxy=frames[3].boxes_xyxy + [30, 40, 30, 40])  # 50 px in 2 frames
    table = track_table(frames)
    times, v = speeds(table[1], fps=10.0)
    np.testing.assert_allclose(times, [0.1, 0.3])
    np.testing.assert_allclose(v, [0.0, 250.0])  # 50 px over 0.2 s


def test_plot_command_writes_the_four_pictures(tmp_path, capsys):
    from aptrack.io.convert import write_results

    src = tmp_path / "run.json"
    write_results(src, {"keypoint_names": [], "width": 64, "height": 48, "fps": 10}, _frames([[1, 2]] * 5))
    assert main(["plot", str(src), "-o", str(tmp_path / "plots")]) == 0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["confidence.png", "occupancy.png", "paths.png", "speed.png"]
    assert all((tmp_path / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)

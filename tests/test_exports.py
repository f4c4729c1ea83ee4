"""MOTChallenge, DeepLabCut and SLEAP exports: each read back by its own tool's reader."""

import numpy as np
import pytest
from conftest import write_video

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.core.layout import load_layout
from aptrack.io.exports import parse_exports
from aptrack.pipeline import Pipeline
from aptrack.runner import process_video
from aptrack.track import PoseTracker
from aptrack.track.config import TrackerConfig

LAYOUT = load_layout("ap10k")


class PosedSquares:
    """The moving square of conftest.write_video (missed on frame 1), plus a second square 30 px lower
    from frame 2, with keypoint q at (x1 + q, y1 + 0.5 q) scoring 0.5 + q / 100 (no network)."""

    def __call__(self, frame, frame_index):
        if frame_index == 1:
            return Instances.empty(frame_index=frame_index)  # no animal found, and no keypoint dimension
        ys, xs = np.nonzero(frame[..., 0] > 128)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
        boxes = [box] + ([box + [0, 30, 0, 30]] if frame_index >= 2 else [])
        boxes = np.array(boxes)
        k = LAYOUT.num_keypoints
        q = np.arange(k, dtype=float)
        kp = boxes[:, None, :2] + np.stack([q, 0.5 * q], axis=1)[None]
        return Instances(boxes, np.full(len(boxes), 0.9), keypoints=kp,
                         keypoint_scores=np.tile(0.5 + q / 100, (len(boxes), 1)), frame_index=frame_index)


def _run(tmp_path, exports, frames=6):
    video = write_video(tmp_path / "sq.avi", frames, size=(64, 64))
    pipe = Pipeline(PosedSquares(), PoseTracker(TrackerConfig(min_hits=1)), layout=LAYOUT)
    run = process_video(video, pipeline=pipe, output=tmp_path / "out", exports=exports)
    tracked = list(run)
    return tracked, run.summary, tmp_path / "out"


@pytest.mark.filterwarnings("ignore:Operation with tuple is deprecated")  # motmetrics' loader, under pandas 3
def test_mot_export_has_one_line_per_animal_with_1_based_frames_and_xywh(tmp_path):
    tracked, summary, out = _run(tmp_path, "mot")
    lines = (out / "sq_mot.txt").read_text().splitlines()
    assert len(lines) == sum(len(t) for t in tracked) == 5 + 4
    first = lines[0].split(",")
    box = tracked[0].boxes_xyxy[0]
    assert first[:2] == ["1", "1"] and first[7:] == ["-1", "-1", "-1"]
    np.testing.assert_allclose([float(v) for v in first[2:6]], [box[0], box[1], box[2] - box[0], box[3] - box[1]])
    assert sorted(p.name for p in out.iterdir()) == ["sq_mot.txt"]  # only what was asked for
    import motmetrics as mm
    loaded = mm.io.loadtxt(str(out / "sq_mot.txt"), fmt="mot15-2D")  # MOTChallenge's reader, as motmetrics has it
    assert len(loaded) == 9 and loaded.loc[(1, 1), "Width"] == pytest.approx(box[2] - box[0])
    assert summary["outputs"]["mot_txt"].endswith("sq_mot.txt")


def test_dlc_export_opens_with_pandas_as_deeplabcut_reads_it(tmp_path):
    import pandas as pd

    tracked, _, out = _run(tmp_path, "dlc")
    df = pd.read_hdf(out / "sq_dlc.h5", key="df_with_missing")
    assert list(df.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert df.index.tolist() == list(range(6))
    assert sorted(set(df.columns.get_level_values("individuals"))) == ["ind1", "ind2"]
    scorer = df.columns.get_level_values("scorer")[0]
    t = tracked[3]
    second = int(t.track_ids[1])
    np.testing.assert_allclose(df.loc[3, (scorer, f"ind{second}", "nose", "x")], t.keypoints[1, 2, 0], atol=1e-3)
    np.testing.assert_allclose(df.loc[3, (scorer, f"ind{second}", "nose", "likelihood")], 0.52, atol=1e-5)
    assert np.isnan(df.loc[0, (scorer, "ind2", "nose", "x")])  # the second animal is not there yet
    assert df.loc[1].isna().all()  # nobody on frame 1
    csv = pd.read_csv(out / "sq_dlc.csv", header=[0, 1, 2, 3], index_col=0)
    np.testing.assert_allclose(csv.to_numpy(), df.to_numpy(), atol=1e-4, equal_nan=True)


def test_slp_export_loads_back_with_sleap_io_with_the_same_points(tmp_path):
    import sleap_io as sio

    tracked, _, out = _run(tmp_path, "slp,json")
    labels = sio.load_slp(str(out / "sq.slp"))
    assert [n.name for n in labels.skeleton.nodes] == list(LAYOUT.keypoints)
    assert len(labels.skeleton.edges) == len(LAYOUT.skeleton)
    assert sorted(t.name for t in labels.tracks) == ["track_1", "track_2"]
    assert len(labels.labeled_frames) == 5  # frame 1 has no animal
    lf = next(f for f in labels.labeled_frames if f.frame_idx == 4)
    inst = sorted(lf.instances, key=lambda i: i.track.name)
    np.testing.assert_allclose(inst[0].numpy(), tracked[4].keypoints[0], atol=1e-4)
    np.testing.assert_allclose(inst[1].numpy(), tracked[4].keypoints[1], atol=1e-4)
    assert (out / "sq.json").exists()


def test_unknown_exports_and_pose_exports_without_a_pose_are_refused_before_any_frame(tmp_path):
    with pytest.raises(ConfigError, match="unknown export parquet"):
        parse_exports("json,parquet")
    video = write_video(tmp_path / "sq.avi", 3)
    pipe = Pipeline(PosedSquares(), PoseTracker(TrackerConfig(min_hits=1)))  # no layout: no keypoints
    with pytest.raises(ConfigError, match="dlc output needs keypoints"):
        process_video(video, pipeline=pipe, output=tmp_path / "out", exports="dlc")
    assert not list((tmp_path / "out").iterdir())


def test_a_stopped_run_leaves_no_export_under_a_final_name(tmp_path):
    video = write_video(tmp_path / "sq.avi", 6, size=(64, 64))
    pipe = Pipeline(PosedSquares(), PoseTracker(TrackerConfig(min_hits=1)), layout=LAYOUT)
    frames = iter(process_video(video, pipeline=pipe, output=tmp_path / "out", exports="mot,dlc,slp,nwb"))
    next(frames)
    frames.close()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_nwb_export_reads_back_with_pynwb_as_ndx_pose_pose_estimations(tmp_path):
    from pynwb import NWBHDF5IO

    tracked, _, out = _run(tmp_path, "nwb")
    with NWBHDF5IO(str(out / "sq.nwb"), mode="r") as io:
        nwb = io.read()
        behavior = nwb.processing["behavior"]
        pose = behavior["track_2"]
        assert pose.source_software == "aptrack" and list(pose.skeleton.nodes[:]) == list(LAYOUT.keypoints)
        nose = pose.pose_estimation_series["nose"]
        frames_with_two = [t for t in tracked if len(t) == 2]
        assert len(nose.timestamps[:]) == len(frames_with_two)
        np.testing.assert_allclose(nose.timestamps[0], frames_with_two[0].frame_index / 10.0)  # the video's 10 fps
        np.testing.assert_allclose(nose.data[0], frames_with_two[0].keypoints[1, 2], atol=1e-4)
        np.testing.assert_allclose(nose.confidence[0], 0.52, atol=1e-5)
        assert "Skeletons" in behavior.data_interfaces
        assert pose.source_video.external_file[0].endswith("sq.avi") and list(pose.source_video.dimension[:]) == [64, 64]


def test_convert_round_trips_through_every_format_it_reads(tmp_path):
    from aptrack.io.convert import read_results, write_results

    tracked, _, out = _run(tmp_path, "json")
    info, frames, fmt = read_results(out / "sq.json")
    assert fmt == "json" and [len(f) for f in frames] == [len(t) for t in tracked]
    for name in ("back_dlc.csv", "back.h5", "back.slp", "back_mot.txt"):
        write_results(tmp_path / "conv" / name, info, frames)
        read = name if not name.endswith("_dlc.csv") else "back_dlc.csv"
        _, again, _ = read_results(tmp_path / "conv" / read)
        got = {(f.frame_index, int(t)): b for f in again for t, b in zip(f.track_ids, f.boxes_xyxy)}
        want = {(f.frame_index, int(t)): i for f in frames for t, i in zip(f.track_ids, range(len(f)))}
        assert set(got) == set(want), name  # the same animals on the same frames, by id
        if not name.endswith("_mot.txt"):
            f3 = next(f for f in again if f.frame_index == 3)
            np.testing.assert_allclose(f3.keypoints[np.argsort(f3.track_ids)], frames[3].keypoints, atol=0.01)
        else:
            f3 = next(f for f in again if f.frame_index == 3)
            np.testing.assert_allclose(f3.boxes_xyxy, frames[3].boxes_xyxy, atol=0.01)


def test_convert_refuses_what_it_cannot_do_with_one_line(tmp_path, capsys):
    from aptrack.cli import main

    (tmp_path / "a_mot.txt").write_text("1,1,10,10,5,5,0.9,-1,-1,-1\n")
    assert main(["convert", str(tmp_path / "a_mot.txt"), str(tmp_path / "a.slp")]) == 2
    assert "slp output needs keypoints" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "a_mot.txt"), str(tmp_path / "a.parquet")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["convert", str(tmp_path / "bad.json"), str(tmp_path / "b.slp")]) == 2
    assert "not an aptrack results JSON" in capsys.readouterr().err
    assert not (tmp_path / "a.slp").exists() and not (tmp_path / "b.slp").exists()

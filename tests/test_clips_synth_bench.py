"""APTv2 clip loading, the synthetic APTv2 builder, and ``aptrack bench`` end to end."""

import json
import shutil

import cv2
import numpy as np
import pytest
from test_cli import assert_one_line_error
from test_evaluation import cocoeval_on_files

from aptrack.cli import main
from aptrack.core.errors import DatasetError
from aptrack.core.layout import load_layout
from aptrack.data.clips import find_annotation_file, load_clips
from aptrack.data.datasets import load_keypoint_dataset
from aptrack.data.synth import (HIDDEN_TRUTH, ClipSynthesizer, SynthConfig, feather_mask, free_region,
                                load_hidden_truth, synthesize)

AP10K = load_layout("ap10k")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from conftest import ANIMALPOSE
    if not (ANIMALPOSE / "keypoints.json").is_file():
        pytest.skip("shared assets not found (needs animalpose/keypoints.json)")
    out = tmp_path_factory.mktemp("synth")
    animals = load_keypoint_dataset(ANIMALPOSE / "keypoints.json", ANIMALPOSE / "images", AP10K)
    summary = synthesize(animals, out, clips=4, seed=1)
    return out, summary


def test_free_region_avoids_every_box():
    assert free_region(np.array([[100, 0, 200, 80]]), 300, 100) == (0, 0, 100, 100)
    assert free_region(np.array([[100, 0, 200, 50]]), 300, 100) == (0, 50, 300, 100)
    assert free_region(np.array([[0, 0, 300, 100]]), 300, 100) is None


def test_feather_mask_is_opaque_inside_and_soft_at_the_edge():
    m = feather_mask(20, 40, 0.1)
    assert m[10, 20] == 1.0 and 0 < m[0, 20] < 0.5 and m.shape == (20, 40)


def test_synth_writes_aptv2_layout_with_exact_tracks(synthetic):
    out, summary = synthetic
    assert summary["clips"] == {"easy": 2, "hard": 2}
    for split, (lo, hi) in (("easy", SynthConfig.easy_animals), ("hard", SynthConfig.hard_animals)):
        data = json.loads((out / f"test_annotations_{split}.json").read_text())
        frames = {}
        for im in data["images"]:
            assert (out / im["file_name"]).is_file()
            frames.setdefault(im["video_id"], []).append(im["frame_id"])
        assert all(sorted(f) == list(range(15)) for f in frames.values())
        per_image = {}
        for ann in data["annotations"]:
            assert {"video_id", "track_id", "bbox", "keypoints"} <= set(ann)
            assert len(ann["keypoints"]) == 51
            per_image.setdefault(ann["image_id"], set()).add(ann["track_id"])
        assert max(len(v) for v in per_image.values()) <= hi
        if split == "hard":
            assert max(len(v) for v in per_image.values()) >= 3


def test_render_tells_the_hidden_truth_of_an_animal_behind_another():
    synth = ClipSynthesizer.__new__(ClipSynthesizer)  # render needs only the config
    synth.config = SynthConfig(width=60, height=40, feather=0.0)
    patch = np.full((10, 20, 3), 200, np.uint8)
    kp, vis = np.array([[2.0, 2.0], [15.0, 8.0]]), np.array([True, True])
    patches = [(patch, kp, vis, "dog"), (patch, kp, vis, "cat")]
    # 20 x 10 px animals, boxes [10, 15, 30, 25] and [14, 15, 34, 25]: four columns of either show past the other
    placements = [(np.array([20.0, 20.0]), 10.0), (np.array([24.0, 20.0]), 10.0)]
    _, anns = synth.render(np.zeros((40, 60, 3), np.uint8), patches, placements, order=[0, 1])
    behind, front = anns
    assert behind["box_xyxy_full"] == [10.0, 15.0, 30.0, 25.0] and behind["depth"] == 0
    assert behind["visible_fraction"] == pytest.approx(4 / 20)
    assert not behind["annotated"] and "box_xyxy" not in behind  # under min_visible_fraction 0.3
    assert front["visible_fraction"] == pytest.approx(1.0) and front["depth"] == 1 and front["annotated"]
    assert front["box_xyxy"] == front["box_xyxy_full"] == [14.0, 15.0, 34.0, 25.0]
    _, anns = synth.render(np.zeros((40, 60, 3), np.uint8), patches, placements, order=[1, 0])
    assert [a["depth"] for a in anns] == [1, 0]
    assert anns[1]["visible_fraction"] == pytest.approx(4 / 20) and anns[0]["annotated"]


def test_synth_hidden_truth_covers_every_annotation_and_the_hidden_animals(synthetic):
    out, summary = synthetic
    assert summary["files"]["hidden_truth"] == str(out / HIDDEN_TRUTH)
    truth = json.loads((out / HIDDEN_TRUTH).read_text())
    limit = truth["info"]["min_visible_fraction"]
    anns = {a["id"]: a for a in json.loads((out / "test_annotations.json").read_text())["annotations"]}
    by_ann = {h["annotation_id"]: h for h in truth["animals"] if h["annotation_id"] is not None}
    assert set(by_ann) == set(anns)
    assert len(truth["animals"]) > len(anns)  # the hard clips' crossings hide some animals for a while
    depth = {}
    for h in truth["animals"]:
        assert (h["annotation_id"] is not None) == (h["visible_fraction"] >= limit)
        assert depth.setdefault(h["track_id"], h["depth"]) == h["depth"]  # one drawing order per clip
    for i, a in anns.items():
        h = by_ann[i]
        assert (h["image_id"], h["track_id"]) == (a["image_id"], a["track_id"])
        x, y, w, hgt = a["bbox"]
        fx1, fy1, fx2, fy2 = h["box_xyxy_full"]
        assert fx1 - 1 <= x and fy1 - 1 <= y and x + w <= fx2 + 1 and y + hgt <= fy2 + 1  # visible part inside
    loaded = load_hidden_truth(out)
    assert len(loaded) == len(truth["animals"])
    h = truth["animals"][0]
    assert loaded[(h["image_id"], h["track_id"])]["box_xyxy_full"].tolist() == h["box_xyxy_full"]


def test_hidden_truth_missing_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="hidden_truth.json not found.*aptrack synth"):
        load_hidden_truth(tmp_path)


def test_synth_keypoints_sit_on_the_pasted_animal(synthetic):
    out, _ = synthetic
    data = json.loads((out / "test_annotations_easy.json").read_text())
    for ann in data["annotations"][:30]:
        x, y, w, h = ann["bbox"]
        kp = np.array(ann["keypoints"]).reshape(-1, 3)
        on = kp[kp[:, 2] > 0]
        assert len(on) > 0
        # labelled keypoints lie inside the animal's visible box (one pixel of rounding)
        assert (on[:, 0] >= x - 1).all() and (on[:, 0] <= x + w + 1).all()
        assert (on[:, 1] >= y - 1).all() and (on[:, 1] <= y + h + 1).all()


def test_same_seed_same_dataset(synthetic, tmp_path):
    from conftest import ANIMALPOSE
    out, _ = synthetic
    animals = load_keypoint_dataset(ANIMALPOSE / "keypoints.json", ANIMALPOSE / "images", AP10K)
    synthesize(animals, tmp_path, clips=1, seed=1)
    a = json.loads((out / "test_annotations_easy.json").read_text())["annotations"]
    b = json.loads((tmp_path / "test_annotations_easy.json").read_text())["annotations"]
    assert [x["keypoints"] for x in b] == [x["keypoints"] for x in a][:len(b)]


def test_both_aptv2_layouts_are_found(synthetic, tmp_path):
    out, _ = synthetic
    assert find_annotation_file(out, "hard") == out / "test_annotations_hard.json"
    mm = tmp_path / "mmpose"
    (mm / "annotations_hard").mkdir(parents=True)
    shutil.copy(out / "test_annotations_hard.json", mm / "annotations_hard" / "test_annotations.json")
    assert find_annotation_file(mm, "hard") == mm / "annotations_hard" / "test_annotations.json"
    with pytest.raises(DatasetError, match="unknown split"):
        find_annotation_file(out, "medium")
    with pytest.raises(DatasetError, match="no test annotations for split 'easy'"):
        find_annotation_file(mm, "easy")


def test_clips_are_grouped_by_video_and_ordered_by_frame(synthetic, tmp_path):
    out, _ = synthetic
    data = json.loads((out / "test_annotations_hard.json").read_text())
    data["images"] = data["images"][::-1]  # file order must not matter
    path = tmp_path / "shuffled.json"
    path.write_text(json.dumps(data))
    clips = load_clips(path, out, AP10K)
    assert len(clips.clips) == 2 and all(len(c) == 15 for c in clips.clips)
    frame_of = {im["id"]: im["frame_id"] for im in data["images"]}
    for clip in clips.clips:
        assert [frame_of[int(i)] for i in clip.image_ids] == list(range(15))
        for rows, iid in zip(clip.rows, clip.image_ids):
            assert (clips.animals.image_ids[rows] == iid).all()
    assert set(clips.track_ids) == {a["track_id"] for a in data["annotations"]}


def test_missing_track_ids_and_video_ids_are_clear_errors(synthetic, tmp_path):
    out, _ = synthetic
    data = json.loads((out / "test_annotations_easy.json").read_text())
    no_track = json.loads(json.dumps(data))
    del no_track["annotations"][0]["track_id"]
    (tmp_path / "a.json").write_text(json.dumps(no_track))
    with pytest.raises(DatasetError, match="no track_id"):
        load_clips(tmp_path / "a.json", out, AP10K)
    part_video = json.loads(json.dumps(data))
    del part_video["images"][0]["video_id"]
    (tmp_path / "b.json").write_text(json.dumps(part_video))
    with pytest.raises(DatasetError, match="have no video_id"):
        load_clips(tmp_path / "b.json", out, AP10K)


def test_ap10k_without_videos_loads_as_single_frames(ap10k_sample):
    clips = load_clips(ap10k_sample / "test_ap10k.json", ap10k_sample, AP10K)
    assert len(clips.clips) == 2 and all(len(c) == 1 for c in clips.clips)


def test_bench_gt_boxes_ap_equals_pycocotools(synthetic, mirror, random_pose_checkpoint, tmp_path, capsys):
    out, _ = synthetic
    report_dir = tmp_path / "report"
    code = main(["bench", "--data", str(out), "--split", "easy", "--boxes", "gt", "--pose",
                 str(random_pose_checkpoint), "--max-clips", "1", "-o", str(report_dir),
                 "--format", "json", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    head = json.loads(captured.out)
    for key in ("AP", "MOTA", "IDF1", "id_switches", "fps"):
        assert key in head
    stats = cocoeval_on_files(report_dir / "gt.json", report_dir / "results.json", AP10K.sigmas)
    assert head["AP"] == pytest.approx(stats[0], abs=1e-12)
    # ground-truth boxes: the tracker keeps every animal's identity in a clean synthetic clip
    assert head["id_switches"] == 0 and head["MOTA"] > 0.8
    for name in ("report.json", "report.md", "ap_per_species.png", "tracking_per_clip.png"):
        assert (report_dir / name).is_file()


def test_bench_bootstrap_of_one_clip_redraws_exactly_its_scores(synthetic, mirror, random_pose_checkpoint,
                                                                tmp_path, capsys):
    out, _ = synthetic
    report_dir = tmp_path / "report"
    code = main(["bench", "--data", str(out), "--split", "easy", "--boxes", "gt", "--pose",
                 str(random_pose_checkpoint), "--max-clips", "1", "-o", str(report_dir), "--bootstrap", "4",
                 "--format", "json", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    head = json.loads(captured.out)
    # every draw of a single clip is that clip: its AP scored again under new ids is the headline AP
    assert head["intervals"]["AP"] == pytest.approx([head["AP"]] * 2, abs=1e-12)
    assert head["intervals"]["IDF1"] == pytest.approx([head["IDF1"]] * 2)
    assert head["intervals"]["MOTA"] == pytest.approx([head["MOTA"]] * 2)
    assert "samples" not in head["intervals"]
    report = json.loads((report_dir / "report.json").read_text())
    assert len(report["intervals"]["samples"]["AP"]) == 4
    assert "intervals over 4 draws" in (report_dir / "report.md").read_text()


def test_score_outputs_gives_perfect_outputs_perfect_scores_and_counts_a_dropped_animal(synthetic):
    from aptrack.core.instances import Instances
    from aptrack.eval.bench import score_outputs
    out, _ = synthetic
    clips = load_clips(out / "test_annotations_hard.json", out, AP10K)
    a = clips.animals

    def perfect(rows, t):
        return Instances(a.boxes_xyxy[rows], np.ones(len(rows), np.float32), categories=a.categories[rows],
                         keypoints=a.keypoints[rows], keypoint_scores=a.visible[rows].astype(np.float32),
                         track_ids=clips.track_ids[rows], frame_index=t)

    outputs = [[(perfect(rows, t), perfect(rows, t)) for t, rows in enumerate(clip.rows)] for clip in clips.clips]
    r = score_outputs(clips, outputs, "gt-first-frame")
    assert r["keypoints"]["AP"] == pytest.approx(1.0)
    tr = r["tracking"]["overall"]
    assert (tr["MOTA"], tr["IDF1"], tr["id_switches"], tr["misses"]) == (pytest.approx(1.0), pytest.approx(1.0), 0, 0)
    scored, tracked = outputs[0][5]
    outputs[0][5] = (scored, tracked.take(np.arange(1, len(tracked))))  # one animal not reported in one frame
    tr = score_outputs(clips, outputs, "gt-first-frame")["tracking"]["overall"]
    assert tr["misses"] == 1 and tr["false_positives"] == 0


def test_gt_first_frame_keeps_first_frame_identities_and_follows_the_animals(synthetic, mirror):
    from aptrack.core.boxes import box_iou_xyxy
    from aptrack.eval.bench import run_clip
    from aptrack.pipeline import Pipeline
    from aptrack.track import PoseTracker
    from aptrack.track.config import PropagationConfig

    if not (mirror / "weights" / "vittrack.onnx").is_file():
        pytest.skip("shared assets not found (needs weights/vittrack.onnx)")
    out, _ = synthetic
    clips = load_clips(out / "test_annotations_hard.json", out, AP10K)
    clip = clips.clips[0]
    pipeline = Pipeline(detector=None, tracker=PoseTracker(), pose=None, layout=AP10K,
                        propagation=PropagationConfig(use_detector=False))
    evidence = []
    frames = run_clip(pipeline, clips, clip, "gt-first-frame", evidence=evidence)
    first = set(clips.track_ids[clip.rows[0]].tolist())
    # one record per frame, none for the given first frame, each over the carried animals in id order
    assert len(evidence) == 15 and evidence[0] is None
    assert all(e.ids.tolist() == sorted(first) and e.detections_xyxy.shape == (0, 4) for e in evidence[1:])
    assert len(frames) == 15 and len(first) >= 3
    ious = []
    for t, (scored, tracked) in enumerate(frames):
        assert set(tracked.track_ids.tolist()) <= first  # never a new id
        for i, box in zip(clips.track_ids[clip.rows[t]], clips.animals.boxes_xyxy[clip.rows[t]]):
            mine = tracked.boxes_xyxy[tracked.track_ids == i]
            ious.append(box_iou_xyxy(box[None].astype(float), mine.astype(float)).max() if len(mine) else 0.0)
    np.testing.assert_allclose(np.sort(frames[0][1].boxes_xyxy, axis=0),
                               np.sort(clips.animals.boxes_xyxy[clip.rows[0]], axis=0), atol=1e-3)
    assert np.mean(ious) > 0.5  # the single-object trackers follow the animals (no pose here)
    assert set(pipeline.timer.seconds) >= {"sot", "track"} and "detect" not in pipeline.timer.seconds


@pytest.mark.parametrize("args, needle", [
    (["--split", "medium"], "unknown split"),
    (["--split", "easy", "--subset", "val"], "no val annotations"),
])
def test_bench_bad_input_is_one_clear_line(synthetic, mirror, tmp_path, capsys, args, needle):
    out, _ = synthetic
    code = main(["bench", "--data", str(out), *args, "-o", str(tmp_path / "r"), "--quiet", "--pose", "none"])
    assert_one_line_error(code, capsys.readouterr().err, needle)


def test_bench_missing_images_is_a_clear_error(synthetic, mirror, tmp_path, capsys):
    out, _ = synthetic
    code = main(["bench", "--data", str(out / "test_annotations_easy.json"), "--images", str(tmp_path),
                 "--split", "easy", "-o", str(tmp_path / "r"), "--quiet", "--pose", "none"])
    assert_one_line_error(code, capsys.readouterr().err, "missing or unreadable image")


def _gt_as_results(path, with_tracks=True, shift=0.0):
    data = json.loads(path.read_text())
    out = []
    for ann in data["annotations"]:
        kp = np.array(ann["keypoints"], float).reshape(-1, 3)
        kp[:, 2] = (kp[:, 2] > 0).astype(float)
        kp[:, 0] += shift
        rec = {"image_id": ann["image_id"], "video_id": ann["video_id"], "bbox": ann["bbox"], "score": 0.9,
               "keypoints": kp.reshape(-1).tolist(), "category_id": ann["category_id"]}
        if with_tracks:
            rec["track_id"] = ann["track_id"]
        out.append(rec)
    return out


def test_eval_scores_a_perfect_results_file_as_perfect(synthetic, tmp_path, capsys):
    out, _ = synthetic
    gt = out / "test_annotations_easy.json"
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(_gt_as_results(gt)))
    code = main(["eval", "--gt", str(gt), "--pred", str(pred), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    m = json.loads(captured.out)
    assert m["AP"] == pytest.approx(1.0) and m["MOTA"] == 1.0 and m["IDF1"] == 1.0
    assert m["id_switches"] == 0 and m["keypoint_MOTA"] == pytest.approx(1.0)


def test_track_re_tracks_saved_detections_and_eval_scores_them(synthetic, tmp_path, capsys):
    out, _ = synthetic
    gt = out / "test_annotations_easy.json"
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(_gt_as_results(gt, with_tracks=False)))
    tracked = tmp_path / "tracked.json"
    assert main(["track", "--detections", str(dets), "-o", str(tracked), "-q"]) == 0
    records = json.loads(tracked.read_text())["annotations"]
    assert all("track_id" in r for r in records)
    assert main(["eval", "--gt", str(gt), "--pred", str(tracked), "--format", "json"]) == 0
    m = json.loads(capsys.readouterr().out)
    # clean boxes: the tracker needs min_hits frames for a new id, then never switches
    assert m["id_switches"] == 0 and m["IDF1"] > 0.9 and m["MOTA"] > 0.85


def test_eval_needs_a_consistent_set_of_inputs(tmp_path, capsys):
    code = main(["eval", "--gt", str(tmp_path / "a.json")])
    assert_one_line_error(code, capsys.readouterr().err, "--gt and --pred")


def test_track_with_a_broken_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"annotations": [{"score": 1}]}')
    code = main(["track", "--detections", str(bad), "-o", str(tmp_path / "o.json")])
    assert_one_line_error(code, capsys.readouterr().err, "lacks 'bbox'")
    assert not (tmp_path / "o.json").exists()


def _records(*boxes, **extra):
    return [{"image_id": t, "bbox": list(b), "score": 0.9, **extra} for t, b in enumerate(boxes)]


@pytest.mark.parametrize("bad, needle", [
    ({"bbox": [float("nan"), 1, -5, 2]}, "bbox [nan, 1.0, -5.0, 2.0] is not finite"),
    ({"bbox": [10, 10, -5, 2]}, "has a width or height <= 0"),
    ({"bbox": [1e9, 0, 5, 5]}, "lies outside"),
    ({"bbox": [10, 10, 5]}, "is not 4 numbers"),
    ({"bbox": ["a", 1, 2, 3]}, "is not 4 numbers"),
    ({"score": 1.5}, "score 1.5 is not in [0, 1]"),
    ({"score": -0.1}, "is not in [0, 1]"),
    ({"keypoints": [1.0, 2.0]}, "not x, y, v triples"),
    ({"keypoints": [1.0, float("inf"), 0.5]}, "keypoints are not finite"),
    ({"keypoints": [1.0, 2.0, 7.0]}, "keypoint scores are not in [0, 2]"),
])
def test_track_refuses_an_invalid_record_naming_it_and_drop_invalid_leaves_it_out(bad, needle, tmp_path, capsys):
    import re

    records = _records(*([10 + t, 10, 20, 20] for t in range(8)))
    records[1] = {**records[1], **bad}
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(records))  # NaN and Infinity as Python's json writes them
    out = tmp_path / "o.json"
    code = main(["track", "--detections", str(dets), "-o", str(out)])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, "record 1 (image_id 1)")
    assert re.search(re.escape(needle), err) and "--drop-invalid" in err
    assert not out.exists()
    assert main(["track", "--detections", str(dets), "-o", str(out), "--drop-invalid"]) == 0
    assert "(1 invalid left out)" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["summary"]["records_dropped"] == 1 and result["summary"]["records_in"] == 8
    frames = sorted(r["image_id"] for r in result["annotations"])
    assert len(frames) >= 4 and 1 not in frames and len({r["track_id"] for r in result["annotations"]}) == 1


def test_bench_empty_split_is_a_clear_error(synthetic, mirror, tmp_path, capsys):
    out, _ = synthetic
    data = json.loads((out / "test_annotations_easy.json").read_text())
    data["annotations"] = []
    empty = tmp_path / "test_annotations_easy.json"
    empty.write_text(json.dumps(data))
    code = main(["bench", "--data", str(empty), "--images", str(out), "--split", "easy",
                 "-o", str(tmp_path / "r"), "--quiet", "--pose", "none"])
    assert_one_line_error(code, capsys.readouterr().err, "no usable annotation")


def test_synth_scales_its_held_out_side_to_a_small_source(tmp_path, capsys):
    from conftest import ANIMALPOSE, animalpose_subset
    if not (ANIMALPOSE / "keypoints.json").is_file():
        pytest.skip("shared assets not found (needs animalpose/keypoints.json)")
    source = tmp_path / "small"
    source.mkdir()
    animalpose_subset(source / "keypoints.json", 50)
    (source / "images").symlink_to(ANIMALPOSE / "images")
    code = main(["synth", "--source", str(source), "--out", str(tmp_path / "out"), "--clips", "4", "--quiet"])
    assert code == 0, capsys.readouterr().err
    clips = load_clips(tmp_path / "out" / "test_annotations_hard.json", tmp_path / "out", AP10K)
    assert len(clips.clips) == 2 and all(len(c.files) == 15 for c in clips.clips)


def test_held_out_size_is_the_training_split_for_a_full_source_and_a_fraction_for_a_small_one():
    from aptrack.data.synth import held_out_size
    assert held_out_size(5475) == 1100      # Animal-Pose: the animals the default model never saw
    assert held_out_size(642) == 129        # 20%, rounded up
    assert held_out_size(3) == 1


def test_synth_on_a_source_with_no_usable_animal_says_why(tmp_path):
    from conftest import ANIMALPOSE, animalpose_subset
    if not (ANIMALPOSE / "keypoints.json").is_file():
        pytest.skip("shared assets not found (needs animalpose/keypoints.json)")
    animals = load_keypoint_dataset(animalpose_subset(tmp_path / "k.json", 5), ANIMALPOSE / "images", AP10K)
    with pytest.raises(DatasetError, match="a clip needs at least one"):
        synthesize(animals, tmp_path / "out", clips=1, seed=0, config=SynthConfig(min_source_size=10_000))


def test_bench_without_data_builds_the_synthetic_set_once_then_reuses_it(mirror, tmp_path, capsys):
    from conftest import ANIMALPOSE
    if not (ANIMALPOSE / "keypoints.json").is_file():
        pytest.skip("shared assets not found (needs animalpose/keypoints.json)")
    args = ["bench", "--split", "hard", "--max-clips", "1", "--pose", "none", "--compare", "none",
            "--device", "cpu", "--format", "json", "-o", str(tmp_path / "r")]
    assert main(args) == 0
    err = capsys.readouterr().err
    built = tmp_path / "cache" / "data" / "aptv2_synth"
    assert "building the synthetic APTv2 set" in err and (built / "test_annotations_hard.json").is_file()
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]  # no half-built folder left
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "building" not in captured.err and "synthetic (cache)" in captured.err
    assert json.loads(captured.out)["clips"] == 1


def test_bench_without_data_or_mirror_says_how_to_get_clips(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("APTRACK_MIRROR", raising=False)
    monkeypatch.delenv("APTRACK_DATA", raising=False)
    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    code = main(["bench", "--split", "hard", "-o", str(tmp_path / "r"), "--pose", "none"])
    assert_one_line_error(code, capsys.readouterr().err, "no APTv2 clips found", "APTv2", "aptrack synth")


def test_bench_takes_its_clips_from_aptrack_data(synthetic, monkeypatch):
    from aptrack.data.locate import find_clip_data
    out, _ = synthetic
    monkeypatch.setenv("APTRACK_DATA", str(out))
    found = find_clip_data()
    assert found.path == out and found.build_from is None
    monkeypatch.setenv("APTRACK_DATA", str(out / "missing"))
    with pytest.raises(DatasetError, match="does not exist"):
        find_clip_data()


def test_occlusion_clip_has_two_look_alikes_that_vanish_and_come_back(tmp_path, capsys):
    from conftest import ANIMALPOSE
    if not (ANIMALPOSE / "keypoints.json").is_file():
        pytest.skip("shared assets not found (needs animalpose/keypoints.json)")
    out = tmp_path / "occ"
    code = main(["synth", "--source", str(ANIMALPOSE), "--out", str(out), "--occlusion-frames", "150",
                 "--seed", "3"])
    printed = capsys.readouterr().out
    assert code == 0 and "150 frames" in printed
    clips = load_clips(out / "test_annotations_hard.json", out, AP10K)
    (clip,) = clips.clips
    assert len(clip.files) == 150
    tracks = np.unique(clips.track_ids)
    assert len(tracks) == 2
    present = np.array([[t in clips.track_ids[rows] for t in tracks] for rows in clip.rows])  # (frames, 2)
    for i in range(2):
        gone = ~present[:, i]
        starts = np.flatnonzero(gone[1:] & ~gone[:-1]) + 1
        ends = np.flatnonzero(~gone[1:] & gone[:-1]) + 1
        assert len(starts) >= 1 and len(ends) >= 1  # it vanishes and comes back
        assert (ends[ends > starts[0]][0] - starts[0]) >= 5  # for at least the shortest gap
        # it slides behind cover: its box just before the gap is narrower than usual
        rows = clip.rows[starts[0] - 1]
        width = lambda r: clips.animals.boxes_xyxy[r, 2] - clips.animals.boxes_xyxy[r, 0]
        last = width(rows[clips.track_ids[rows] == tracks[i]][0])
        usual = np.median([width(r[clips.track_ids[r] == tracks[i]][0]) for r, p in zip(clip.rows, present[:, i])
                           if p])
        assert last < 0.75 * usual
    # look-alikes: both are the same source animal (one mirrored), so the same species and size
    a = clips.animals
    assert len(set(a.categories.tolist())) == 1
    cap = cv2.VideoCapture(str(out / "occlusion.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 150
    cap.release()


def test_occlusion_schedule_ramps_into_and_out_of_each_gap():
    from aptrack.data.synth import ClipSynthesizer, OcclusionConfig
    occ = OcclusionConfig(every_frames=(40, 41), gap_frames=(5, 5), edge_frames=3)
    seen = ClipSynthesizer._seen_fractions(200, np.random.default_rng(0), occ)
    assert seen.shape == (2, 200) and seen.min() == 0.0 and seen.max() == 1.0
    for row in seen:
        hidden = np.flatnonzero(row == 0)
        start = hidden[0]
        assert np.array_equal(hidden[:5], np.arange(start, start + 5))  # a 5-frame gap
        np.testing.assert_allclose(row[start - 3:start], [0.75, 0.5, 0.25])  # sliding behind cover
        np.testing.assert_allclose(row[start + 5:start + 8], [0.25, 0.5, 0.75])  # and out again
        gap_starts = np.flatnonzero((row[1:] == 0) & (row[:-1] > 0)) + 1
        assert np.all(np.diff(gap_starts) == 40)  # start to start

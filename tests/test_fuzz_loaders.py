"""Loaders fed mutated files: anything but aptrack's own error family is a bug.

Each case starts from a small valid file of one format (COCO / AP-10K keypoints,
APTv2 clips, Animal-Pose, aptrack's results JSON, MOT, DeepLabCut CSV,
init-boxes, SLEAP and DeepLabCut h5 files, aptrack's run state files) and applies random mutations drawn by hypothesis: a key deleted, a
value replaced by another JSON value (null, a string, NaN, a negative or huge
number, a list, a mapping), the bytes cut short or overwritten. The loader must
either read the file or raise :class:`~aptrack.core.errors.AptrackError`.
"""

import functools
import json
import math
import shutil

import cv2
import numpy as np
import pytest
from conftest import ANIMALPOSE
from hypothesis import given
from hypothesis import strategies as st

from aptrack.core.errors import AptrackError
from aptrack.core.instances import Instances
from aptrack.core.layout import load_layout
from aptrack.data.clips import load_clips
from aptrack.data.datasets import load_keypoint_dataset
from aptrack.eval.retrack import read_results as read_detections
from aptrack.io.convert import read_results
from aptrack.io.init_boxes import load_init_boxes

AP10K = load_layout("ap10k")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=6)
    | st.sampled_from([math.nan, math.inf, -1.0, 0.0, 1e300, -0.5]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def paths_of(doc, prefix=()):
    """Every (path to a node) of a JSON tree, the root included."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from paths_of(value, (*prefix, i))


@st.composite
def mutated_json(draw, doc):
    """``doc`` (not changed) with 1-3 random mutations, as the text of a file."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(paths_of(doc))
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
        if not isinstance(doc, (dict, list)):
            break
    return json.dumps(doc, allow_nan=True)


@st.composite
def mutated_bytes(draw, text: str):
    """``text`` cut short or with a few bytes overwritten."""
    data = bytearray(text.encode())
    if draw(st.booleans()):
        return bytes(data[:draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def load_or_aptrack_error(load, path):
    try:
        load(path)
    except AptrackError:
        pass


def coco_doc():
    return {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                       {"id": 2, "file_name": "a.png", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "dog", "keypoints": list(AP10K.keypoints)}],
            "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [5, 5, 30, 20],
                             "keypoints": [10, 10, 2] * 17, "num_keypoints": 17} for i in (1, 2)]}


def clips_doc():
    doc = coco_doc()
    for i, im in enumerate(doc["images"]):
        im.update(video_id=7, frame_id=i)
    for a in doc["annotations"]:
        a["track_id"] = 3
    return doc


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz")
    cv2.imwrite(str(path / "a.png"), np.zeros((48, 64, 3), np.uint8))
    return path


def _write(folder, name, content):
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@given(st.data())
def test_the_coco_keypoint_loader_reads_a_mutated_file_or_says_what_is_wrong(folder, data):
    text = data.draw(st.one_of(mutated_json(coco_doc()), mutated_bytes(json.dumps(coco_doc()))))
    path = _write(folder, "coco.json", text)
    load_or_aptrack_error(lambda p: load_keypoint_dataset(p, folder, AP10K), path)


@given(st.data())
def test_the_aptv2_clip_loader_reads_a_mutated_file_or_says_what_is_wrong(folder, data):
    text = data.draw(st.one_of(mutated_json(clips_doc()), mutated_bytes(json.dumps(clips_doc()))))
    path = _write(folder, "clips.json", text)
    load_or_aptrack_error(lambda p: load_clips(p, folder, AP10K), path)


@pytest.fixture(scope="module")
def animalpose_doc():
    if not (ANIMALPOSE / "keypoints.json").is_file():
        pytest.skip("shared assets not found (needs animalpose/keypoints.json)")
    full = json.loads((ANIMALPOSE / "keypoints.json").read_text())
    first = list(full["images"])[:1]
    return {"categories": full["categories"], "images": {i: full["images"][i] for i in first},
            "annotations": [a for a in full["annotations"] if str(a["image_id"]) in first][:2]}


@given(st.data())
def test_the_animalpose_loader_reads_a_mutated_file_or_says_what_is_wrong(folder, animalpose_doc, data):
    text = data.draw(mutated_json(animalpose_doc))
    path = _write(folder, "animalpose.json", text)
    load_or_aptrack_error(lambda p: load_keypoint_dataset(p, ANIMALPOSE / "images", AP10K), path)


def results_doc():
    return {"info": {"layout": "ap10k"},
            "annotations": [{"image_id": t, "frame": t, "track_id": 1, "category_id": 1, "bbox": [5, 5, 30, 20],
                             "score": 0.9, "keypoints": [10, 10, 0.8] * 17} for t in range(3)]}


@given(st.data())
def test_the_results_readers_read_a_mutated_results_json_or_say_what_is_wrong(folder, data):
    text = data.draw(st.one_of(mutated_json(results_doc()), mutated_bytes(json.dumps(results_doc()))))
    path = _write(folder, "results.json", text)
    load_or_aptrack_error(read_results, path)
    load_or_aptrack_error(read_detections, path)


MOT_TEXT = "".join(f"{t},1,5,5,30,20,0.9,-1,-1,-1\n{t},2,40,5,10,10,0.8,-1,-1,-1\n" for t in range(1, 4))
DLC_CSV = ("scorer,aptrack,aptrack\nindividuals,track_1,track_1\nbodyparts,nose,nose\ncoords,x,y\n"
           "0,10.0,12.0\n1,11.0,12.5\n")
INIT_CSV = "id,x1,y1,x2,y2\n1,5,5,30,20\n2,40,5,50,15\n"


@pytest.mark.parametrize("name, text, load", [
    ("tracks.mot.txt", MOT_TEXT, read_results),
    ("poses_dlc.csv", DLC_CSV, read_results),
    ("init.csv", INIT_CSV, load_init_boxes),
    ("init.json", json.dumps([{"id": 1, "box_xyxy": [5, 5, 30, 20]}]), load_init_boxes),
])
@given(data=st.data())
def test_text_readers_read_a_mutated_file_or_say_what_is_wrong(folder, name, text, load, data):
    path = _write(folder, name, data.draw(mutated_bytes(text)))
    load_or_aptrack_error(load, path)


@pytest.mark.parametrize("text, needle", [
    ("1e12,1,5,5,30,20,0.9\n", "numbered from 1"),
    ("0,1,5,5,30,20,0.9\n", "numbered from 1"),
    ("1,1,nan,5,30,20,0.9\n", "must be finite"),
])
def test_a_mot_file_with_impossible_frames_or_values_is_refused_at_once(folder, text, needle):
    with pytest.raises(AptrackError, match=needle):
        read_results(_write(folder, "bad.mot.txt", text))


@functools.lru_cache(maxsize=None)
def pose_file(kind: str) -> bytes:
    """A SLEAP file or a DeepLabCut h5 (``kind`` slp or h5) as aptrack's writers make them (two
    animals, three frames); a plain function, so that hypothesis does not print it with each case."""
    import tempfile
    from pathlib import Path

    from aptrack.io.exports import DlcWriter, SlpWriter

    out = Path(tempfile.mkdtemp(prefix="aptrack-fuzz-"))
    info = {"keypoint_names": list(AP10K.keypoints), "skeleton": [list(p) for p in AP10K.skeleton],
            "video": "v.avi", "width": 64, "height": 48, "fps": 10.0}
    writers = [DlcWriter(out, "p", info), SlpWriter(out, "p", info)]
    k = AP10K.num_keypoints
    for f in range(3):
        boxes = np.array([[1.0 + f, 2, 20, 30], [30, 5, 60, 40]])
        kp = boxes[:, None, :2] + np.arange(2 * k, dtype=float).reshape(1, k, 2)
        frame = Instances(boxes, [0.9, 0.8], keypoints=kp, keypoint_scores=np.full((2, k), 0.7), track_ids=[1, 2],
                          frame_index=f)
        for w in writers:
            w.write(frame)
    for w in writers:
        w.commit()
    data = (out / ("p.slp" if kind == "slp" else "p_dlc.h5")).read_bytes()
    shutil.rmtree(out)
    return data


# Files cut short (a copy or a download that stopped) only: with bytes overwritten inside its metadata
# the HDF5 C library itself can crash (a segmentation fault, past anything Python can catch; found
# here within a few dozen examples), which no reader above it can turn into a message.
@pytest.mark.parametrize("kind", ["slp", "h5"])
@given(data=st.data())
def test_the_sleap_and_deeplabcut_h5_readers_read_a_file_cut_short_or_say_what_is_wrong(folder, kind, data):
    name = "poses.slp" if kind == "slp" else "poses_dlc.h5"
    whole = pose_file(kind)
    path = _write(folder, name, whole[:data.draw(st.integers(0, len(whole)))])
    load_or_aptrack_error(read_results, path)


@given(data=st.data())
def test_a_state_file_with_a_crafted_header_and_a_valid_checksum_is_read_or_refused(data):
    """The checksum stops damage; this is a file made to pass it: only StateFileError may come out."""
    import hashlib
    import struct

    from aptrack.core.statefile import MAGIC, StateFileError, decode, encode

    tree = {"next_frame": 12, "tracks": np.arange(6.0).reshape(2, 3), "held": [(3, None, [Instances.empty(17)])]}
    good = encode(tree)
    (length,) = struct.unpack("<Q", good[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    header, body = json.loads(good[start:start + length]), good[start + length:-32]
    text = data.draw(mutated_json(header))
    content = MAGIC + struct.pack("<Q", len(text.encode())) + text.encode() + body
    try:
        decode(content + hashlib.sha256(content).digest())
    except StateFileError:
        pass

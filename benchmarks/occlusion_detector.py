"""How ``aptrack-yolov8n-occluded`` was made: YOLOv8n fine-tuned to find partly hidden animals.

    python benchmarks/occlusion_detector.py frames --out DIR [--synthetic N] [--seed S] [--real]
    python benchmarks/occlusion_detector.py train --frames DIR[,DIR...] --out FILE.pt [--minutes M] [--lr LR] [--init FILE.pt] [--seed S]
    python benchmarks/occlusion_detector.py export --state FILE.pt --out FILE.onnx
    python benchmarks/occlusion_detector.py recall FILE.onnx [FILE.onnx ...] [--images N]

Known-animals mode (``--boxes gt-first-frame``, ``aptrack run --init-boxes``) loses most where
an animal is 30-80% in view and the bundled int8 YOLOv8n finds no box on it (see
``known_animals_breakdown.py``). This script tries the detector itself:

``frames``
    letterboxed 640 x 640 training frames: the Animal-Pose images of the training side of
    aptrack's split (``--real``; the clips of ``aptrack synth`` draw only on the other side),
    and frames rendered by :class:`aptrack.data.synth.ClipSynthesizer` from training-side
    animals (80% hard: 3-5 animals crossing), labelled with their visible-part boxes (animals
    under ``min_visible_fraction`` in view unlabelled, as in the test sets), each species as
    its COCO class. Boxes of other COCO classes that the bundled model finds (score >= 0.5)
    are kept as labels, so the fine-tune does not unlearn them.
``train``
    rebuilds the float network from the bundled int8 ONNX file (its initialisers carry the
    fused network's names: weight = (quantised - zero point) * scale), and fine-tunes every
    layer but the DFL with Ultralytics' own detection loss (AdamW, warm-up, cosine over
    ``--minutes``, horizontal flips and HSV jitter), saving the state every 300 steps; ``--init``
    goes on from an earlier state.
    Ultralytics' ``fuse`` returns frozen convolutions; they are thawed here.
``export``
    the state as float ONNX (``*_fp32.onnx``) with the bundled file's metadata (class names,
    stride, input size) and its own description, then uint8 weights by onnxruntime's dynamic
    quantisation, as the bundled file is built (its ``ConvInteger`` is about 4 times slower
    with int8 weights on this CPU). The uint8 file loses part of what the fine-tune gained on
    partly hidden animals; the float file is the one shipped (``aptrack-yolov8n-occluded``,
    ``weights/aptrack_yolov8n_occluded_fp32.md``).
``recall``
    recall and precision at IoU 0.5 on the held-out real Animal-Pose images (the val side of
    the split, whole-animal boxes), every animal class as one: the fine-tune must not lose
    what the bundled model finds in plain photographs.

Needs ``$APTRACK_MIRROR`` (the Animal-Pose images and the bundled detector) and torch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

COCO_IDS = {"cat": 15, "dog": 16, "horse": 17, "sheep": 18, "cow": 19}
SIZE = 640
PAD_VALUE = 114  # Ultralytics' letterbox grey
PSEUDO_MIN_SCORE = 0.5
PSEUDO_NMS_IOU = 0.6
SYNTH_HARD_SHARE = 0.8
DESCRIPTION = ("aptrack-yolov8n-occluded: Ultralytics YOLOv8n (COCO) fine-tuned by aptrack on Animal-Pose "
               "images and synthetic clips to find partly hidden animals")


def animal_pose_dir() -> Path:
    """``animalpose/`` of the offline mirror (``$APTRACK_MIRROR``)."""
    from aptrack.core.hub import mirror_root

    root = mirror_root()
    if root is None or not (root / "animalpose" / "keypoints.json").is_file():
        raise SystemExit("set APTRACK_MIRROR to a folder holding animalpose/keypoints.json")
    return root / "animalpose"


def split_sides():
    """Animal-Pose as aptrack splits it: the folder, the training side (a ``KeypointDataset``)
    and the names of the held-out images (by name: the mirror may be given as a relative path)."""
    from aptrack.core.layout import load_layout
    from aptrack.data.datasets import load_keypoint_dataset, select_split
    from aptrack.data.synth import SynthConfig

    src = animal_pose_dir()
    animals = load_keypoint_dataset(src / "keypoints.json", src / "images", load_layout("ap10k"))
    cfg = SynthConfig()
    held_out = {Path(f).name for f in select_split(animals, "val", cfg.val_instances, cfg.split_seed).files}
    return src, select_split(animals, "train", cfg.val_instances, cfg.split_seed), held_out


def bundled_detector() -> Path:
    """The bundled int8 YOLOv8n ONNX file, found and sha256-checked by the weights registry."""
    from aptrack.core.hub import resolve

    return resolve("yolov8n-int8").path


def letterbox(img: np.ndarray):
    """(640, 640, 3) uint8 and the scale and offsets that map frame pixels into it."""
    import cv2

    h, w = img.shape[:2]
    s = SIZE / max(h, w)
    nw, nh = int(round(w * s)), int(round(h * s))
    out = np.full((SIZE, SIZE, 3), PAD_VALUE, np.uint8)
    dx, dy = (SIZE - nw) // 2, (SIZE - nh) // 2
    out[dy:dy + nh, dx:dx + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out, s, dx, dy


class PseudoLabeller:
    """Boxes (class, x1, y1, x2, y2) of the bundled model's non-Animal-Pose classes in a letterboxed frame."""

    def __init__(self, onnx_path: Path):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_path))

    def __call__(self, img640: np.ndarray) -> np.ndarray:
        import torch
        import torchvision

        x = np.ascontiguousarray(img640[:, :, ::-1].transpose(2, 0, 1)[None], np.float32) / 255
        p = self.session.run(None, {"images": x})[0][0].T  # (8400, 84): cx, cy, w, h, class scores
        cls, score = p[:, 4:].argmax(1), p[:, 4:].max(1)
        keep = (score >= PSEUDO_MIN_SCORE) & ~np.isin(cls, list(COCO_IDS.values()))
        if not keep.any():
            return np.zeros((0, 5), np.float32)
        b = p[keep, :4]
        xyxy = np.c_[b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2]
        k = torchvision.ops.batched_nms(torch.tensor(xyxy), torch.tensor(score[keep]),
                                        torch.tensor(cls[keep]), PSEUDO_NMS_IOU).numpy()
        return np.c_[cls[keep][k], xyxy[k]].astype(np.float32)


def make_frames(out: Path, synthetic: int, seed: int, real: bool) -> None:
    import cv2

    from aptrack.data.synth import ClipSynthesizer, SynthConfig
    from aptrack.io.images import load_image

    src, training_side, held_out = split_sides()
    (out / "images").mkdir(parents=True, exist_ok=True)
    synth = ClipSynthesizer(training_side, SynthConfig())
    pseudo = PseudoLabeller(bundled_detector())
    records = []

    def save(img, labels, kind):
        name = f"{len(records):06d}.jpg"
        cv2.imwrite(str(out / "images" / name), img, [cv2.IMWRITE_JPEG_QUALITY, 93])
        records.append({"file": name, "kind": kind, "labels": np.concatenate([labels, pseudo(img)]).tolist()})

    if real:
        data = json.loads((src / "keypoints.json").read_text())
        species = {int(c["id"]): c["name"] for c in data["categories"]}
        by_image: dict[int, list] = {}
        for a in data["annotations"]:
            by_image.setdefault(int(a["image_id"]), []).append(a)
        for image_id, name in data["images"].items():
            path = src / "images" / name
            if path.name in held_out:
                continue
            img, s, dx, dy = letterbox(load_image(path))
            labels = [[COCO_IDS[species[int(a["category_id"])]], a["bbox"][0] * s + dx, a["bbox"][1] * s + dy,
                       a["bbox"][2] * s + dx, a["bbox"][3] * s + dy] for a in by_image.get(int(image_id), [])]
            save(img, np.array(labels, np.float32).reshape(-1, 5), "real")
    rng = np.random.default_rng(seed)
    for j in range(synthetic):
        hard = rng.random() < SYNTH_HARD_SHARE
        r = np.random.default_rng([seed, 1000 + j])
        picks, heights = synth.pick_animals(hard, r)
        n = len(picks)
        start, end = synth.paths(n, heights, hard, r)
        u = r.uniform(0.2, 0.8) if hard else r.uniform()  # hard clips cross mid-way
        flips = r.random(n) < 0.5
        order = r.permutation(n)
        patches = synth.patches(picks, flips)
        frame, anns = synth.render(synth.background(r), patches,
                                   [(start[i] + (end[i] - start[i]) * u, heights[i]) for i in range(n)], order)
        img, s, dx, dy = letterbox(frame)
        labels = [[COCO_IDS[a["species"]], *(np.array(a["box_xyxy"]) * s + [dx, dy, dx, dy])]
                  for a in anns if a["annotated"]]
        save(img, np.array(labels, np.float32).reshape(-1, 5), "synth_hard" if hard else "synth_easy")
    tmp = out / "labels.json.tmp"
    tmp.write_text(json.dumps(records))
    tmp.replace(out / "labels.json")
    print(f"{len(records)} frames in {out}")


def float_network(state: Path | None = None):
    """The fused YOLOv8n (conv + bias, no batch norm) with the bundled int8 file's weights, or ``state``'s."""
    import onnx
    import torch
    from onnx import numpy_helper
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=80, verbose=False)
    model.fuse(verbose=False)
    if state is not None:
        model.load_state_dict(torch.load(state))
        return model
    init = {i.name: numpy_helper.to_array(i)
            for i in onnx.load(str(bundled_detector())).graph.initializer}
    weights = {}
    for key, value in model.state_dict().items():
        base = key[:-len(".weight")]
        if key.endswith(".weight") and base + ".weight_quantized" in init:
            q = init[base + ".weight_quantized"].astype(np.float32)
            scale = init[base + ".weight_scale"].astype(np.float32)
            zero = init[base + ".weight_zero_point"].astype(np.float32)
            per_channel = (-1,) + (1,) * (q.ndim - 1) if scale.size > 1 else ()
            w = (q - zero.reshape(per_channel)) * scale.reshape(per_channel)
            weights[key] = torch.from_numpy(w.reshape(value.shape))
        elif key in init:
            weights[key] = torch.from_numpy(init[key].astype(np.float32).reshape(value.shape))
        else:
            weights[key] = value  # buffers the file does not hold (anchors, strides)
    model.load_state_dict(weights)
    return model


def train(frame_dirs: list[Path], out: Path, minutes: float, lr_max: float, batch: int = 8,
          warmup_steps: int = 60, seed: int = 0, init: Path | None = None) -> None:
    import cv2
    import torch
    from ultralytics.cfg import get_cfg

    torch.manual_seed(seed)
    items = [(str(d / "images" / r["file"]), np.array(r["labels"], np.float32).reshape(-1, 5))
             for d in frame_dirs for r in json.loads((d / "labels.json").read_text())]
    model = float_network(init)
    model.args = get_cfg()
    model.train()
    for name, p in model.named_parameters():
        p.requires_grad_("dfl" not in name)  # fuse() froze them; the DFL is a fixed projection
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith(".bias")]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and n.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr_max)
    rng = np.random.default_rng(seed)

    def batch_of(idx):
        imgs, image_of_box, classes, boxes = [], [], [], []
        for j, i in enumerate(idx):
            path, labels = items[i]
            img, labels = cv2.imread(path)[:, :, ::-1], labels.copy()
            if rng.random() < 0.5:
                img = img[:, ::-1]
                labels[:, [1, 3]] = SIZE - labels[:, [3, 1]]
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV).astype(np.float32)
            hsv[..., 1] *= rng.uniform(0.7, 1.3)
            hsv[..., 2] *= rng.uniform(0.7, 1.3)
            img = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
            imgs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
            for c, x1, y1, x2, y2 in labels:
                if x2 - x1 >= 2 and y2 - y1 >= 2:
                    image_of_box.append(j)
                    classes.append([c])
                    boxes.append([(x1 + x2) / (2 * SIZE), (y1 + y2) / (2 * SIZE), (x2 - x1) / SIZE, (y2 - y1) / SIZE])
        return {"img": torch.stack(imgs).float() / 255, "batch_idx": torch.tensor(image_of_box, dtype=torch.float32),
                "cls": torch.tensor(classes, dtype=torch.float32).reshape(-1, 1),
                "bboxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)}

    start, step, order, pos, running = time.time(), 0, rng.permutation(len(items)), 0, None
    while time.time() - start < minutes * 60:
        if pos + batch > len(order):
            order, pos = rng.permutation(len(items)), 0
        idx, pos = order[pos:pos + batch], pos + batch
        done = min(1.0, (time.time() - start) / (minutes * 60))
        lr = lr_max * min(1.0, (step + 1) / warmup_steps) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))
        for group in opt.param_groups:
            group["lr"] = lr
        loss, parts = model.loss(batch_of(idx))
        opt.zero_grad()
        loss.sum().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        parts = torch.stack([torch.as_tensor(v) for v in parts.values()]) if isinstance(parts, dict) else parts
        running = parts if running is None else 0.98 * running + 0.02 * parts
        step += 1
        if step % 50 == 0:
            print(step, f"{time.time() - start:.0f}s lr {lr:.2e} box/cls/dfl",
                  [round(float(v), 3) for v in running], flush=True)
        if step % 300 == 0:
            torch.save(model.state_dict(), out)
    torch.save(model.state_dict(), out)
    print("steps", step)


def export(state: Path, out: Path) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from ultralytics.nn.modules.head import Detect

    model = float_network(state).eval()
    for m in model.modules():
        if isinstance(m, Detect):
            m.export, m.format, m.dynamic = True, "onnx", False
    fp32 = out.with_name(out.stem + "_fp32.onnx")
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(fp32), input_names=["images"],
                      output_names=["output0"], opset_version=17, dynamo=False)
    source = onnx.load(str(bundled_detector()))
    m = onnx.load(str(fp32))
    del m.metadata_props[:]
    for p in source.metadata_props:
        if p.key == "onnx.infer":  # the bundled file's quantiser mark; this one is float
            continue
        m.metadata_props.add(key=p.key, value=DESCRIPTION if p.key == "description" else p.value)
    onnx.save(m, str(fp32))
    # as the bundled file: ORT's ConvInteger is fast for uint8 weights only; the metadata carries over
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QUInt8)
    print("wrote", out, "and", fp32)


def real_recall(weights: list[Path], limit: int | None, min_iou: float = 0.5,
                min_scores: tuple[float, ...] = (0.25, 0.5)) -> list[dict]:
    """Recall and precision of each detector on the held-out Animal-Pose images (the val side).

    Every animal class is one class (the detector's own merge); a box is right where it
    matches, by score order, an unmatched annotated box at IoU ``min_iou`` or more.
    """
    from aptrack.core.boxes import box_iou_xyxy
    from aptrack.detect.config import DetectorConfig
    from aptrack.detect.yolo import YoloAnimalDetector
    from aptrack.io.images import load_image

    src, _, held_out = split_sides()
    data = json.loads((src / "keypoints.json").read_text())
    image_id = {name: int(i) for i, name in data["images"].items()}
    truth: dict[int, list] = {}
    for a in data["annotations"]:
        truth.setdefault(int(a["image_id"]), []).append(a["bbox"])  # xyxy in this file
    names = sorted(held_out)[:limit]
    rows = []
    for w in weights:
        detector = YoloAnimalDetector(w, DetectorConfig())
        right = dict.fromkeys(min_scores, 0)
        found = dict.fromkeys(min_scores, 0)
        annotated = 0
        for name in names:
            found_boxes = detector(load_image(src / "images" / name))
            gt = np.array(truth.get(image_id[name], []), np.float64).reshape(-1, 4)
            annotated += len(gt)
            for t in min_scores:
                keep = np.flatnonzero(found_boxes.scores >= t)
                found[t] += len(keep)
                if not len(gt) or not len(keep):
                    continue
                iou = box_iou_xyxy(found_boxes.boxes_xyxy[keep], gt)
                free = np.ones(len(gt), bool)
                for j in np.argsort(-found_boxes.scores[keep], kind="stable"):
                    cand = np.where(free & (iou[j] >= min_iou), iou[j], -1.0)
                    if cand.max() >= min_iou:
                        free[int(cand.argmax())] = False
                        right[t] += 1
        rows.append({"weights": w.name, "images": len(names), "animals": annotated,
                     **{f"recall@{t}": right[t] / max(annotated, 1) for t in min_scores},
                     **{f"precision@{t}": right[t] / max(found[t], 1) for t in min_scores}})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("frames")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--synthetic", type=int, default=2500)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--real", action="store_true", help="also the training-side Animal-Pose images")
    t = sub.add_parser("train")
    t.add_argument("--frames", required=True, help="frame folders, comma-separated")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=30.0)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--init", type=Path, help="a state from an earlier run to go on from")
    t.add_argument("--seed", type=int, default=0, help="the order and augmentation draw")
    e = sub.add_parser("export")
    e.add_argument("--state", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("recall", help="recall and precision on the held-out real Animal-Pose images")
    r.add_argument("weights", type=Path, nargs="+", help="ONNX detector files")
    r.add_argument("--images", type=int, help="only the first N held-out images (by name)")
    args = p.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if args.command == "frames":
        make_frames(args.out, args.synthetic, args.seed, args.real)
    elif args.command == "train":
        train([Path(d) for d in args.frames.split(",")], args.out, args.minutes, args.lr,
              seed=args.seed, init=args.init)
    elif args.command == "recall":
        for row in real_recall(args.weights, args.images):
            print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    else:
        export(args.state, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

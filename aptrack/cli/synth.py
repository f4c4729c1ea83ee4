"""``aptrack synth``: APTv2-layout clips from Animal-Pose animals."""

from __future__ import annotations

import sys
from pathlib import Path

from aptrack.cli.common import console_flags, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="build an APTv2-layout video dataset from Animal-Pose animals",
                       description="Build APTv2-layout clips (15 frames, easy/hard by animals per "
                                   "frame) from real Animal-Pose animals over real backgrounds.")
    p.add_argument("--source", required=True,
                   help="Animal-Pose folder (keypoints.json and images/) or its keypoints.json")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--clips", type=positive_int, default=40, help="number of clips (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--occlusion-frames", type=positive_int, default=None, metavar="N",
                   help="instead of short clips, one N-frame clip of two look-alike animals that "
                        "each vanish for 5-30 frames about every 80 (identity through occlusions), "
                        "also written as OUT/occlusion.avi")
    console_flags(p, quiet_help="no progress bar")
    p.set_defaults(handler=main)


def main(args) -> int:
    from tqdm import tqdm

    from aptrack.core.layout import load_layout
    from aptrack.data.datasets import load_keypoint_dataset
    from aptrack.data.synth import synthesize, synthesize_occlusion

    source = Path(args.source)
    ann = source if source.suffix == ".json" else source / "keypoints.json"
    images = ann.parent / "images"
    animals = load_keypoint_dataset(ann, images, load_layout("ap10k"))
    if args.occlusion_frames:
        summary = synthesize_occlusion(animals, args.out, args.occlusion_frames, args.seed)
        if not args.quiet:
            hidden = ", ".join(f"animal {i + 1} hidden {n} frames" for i, n in summary["hidden_frames"].items())
            print(f"1 clip, {summary['frames']} frames, {summary['animals']} animals ({hidden}) -> "
                  f"{summary['files']['all']}, {summary['files']['video']}")
        return 0
    with tqdm(total=args.clips, unit="clip", disable=args.quiet, dynamic_ncols=True, file=sys.stderr,
              desc="synth") as bar:
        summary = synthesize(animals, args.out, args.clips, args.seed,
                             progress=lambda done: bar.update(done - bar.n))
    if not args.quiet:
        for split in ("easy", "hard"):
            print(f"{split:<5} {summary['clips'][split]} clips, {summary['frames'][split]} frames, "
                  f"{summary['animals'][split]} animals -> {summary['files'][split]}")
    return 0

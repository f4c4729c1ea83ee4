"""``aptrack plot RESULTS -o DIR``: paths, speed, confidence and occupancy as PNGs."""

from __future__ import annotations

from pathlib import Path

from aptrack.cli.common import console_flags


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="draw each track's path, speed, confidence and the occupancy as PNGs",
                       description="Draw the pictures a behaviour researcher looks at first: each track's path "
                                   "over the first frame, its speed and confidence over time, and an occupancy "
                                   "heatmap. Reads any format aptrack convert knows.")
    p.add_argument("results", help="results file (aptrack JSON, DeepLabCut, SLEAP or MOT)")
    p.add_argument("-o", "--output", default="plots", help="folder for the PNGs (default: plots)")
    console_flags(p, quiet_help="print nothing")
    p.set_defaults(handler=main)


def main(args) -> int:
    from aptrack.core.errors import writable_dir
    from aptrack.eval.trajectories import plot_results
    from aptrack.io.convert import read_results

    info, frames, _ = read_results(args.results)
    written = plot_results(info, frames, writable_dir(Path(args.output)))
    if not args.quiet:
        print("\n".join(str(p) for p in written))
    return 0

"""``aptrack convert IN OUT``: results between aptrack JSON, DeepLabCut, SLEAP, MOT and NWB."""

from __future__ import annotations

from aptrack.cli.common import console_flags


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert tracked results between aptrack JSON, DLC, SLEAP, MOT and NWB",
                       description="Read tracked results in one format and write them in another; the "
                                   "formats are told by the file names: *.json (aptrack), *.h5 or *_dlc.csv "
                                   "(DeepLabCut), *.slp (SLEAP), *.txt (MOTChallenge), *.nwb (write only).")
    p.add_argument("input", help="results file to read")
    p.add_argument("output", help="file to write; its name says the format")
    console_flags(p, quiet_help="print nothing")
    p.set_defaults(handler=main)


def main(args) -> int:
    from aptrack.io.convert import read_results, write_results

    info, frames, fmt = read_results(args.input)
    written = write_results(args.output, info, frames)
    if not args.quiet:
        animals = sum(len(f) for f in frames)
        print(f"{args.input} ({fmt}): {len(frames)} frames, {animals} animals -> "
              + ", ".join(str(p) for p in written))
    return 0

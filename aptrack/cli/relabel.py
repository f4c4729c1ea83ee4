"""``aptrack relabel RESULTS -o OUT --swap A B [--from F] | --merge A B``: fix identities after the fact."""

from __future__ import annotations

from aptrack.cli.common import console_flags, non_negative_int, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("relabel", help="swap or merge track ids in a results file, writing a new one",
                       description="Fix identities after the fact: swap two ids from a frame on (an identity "
                                   "swap the tracker made), or merge one id into another (one animal with two "
                                   "ids). Reads and writes any format aptrack convert knows.")
    p.add_argument("results", help="results file (aptrack JSON, DeepLabCut, SLEAP or MOT)")
    p.add_argument("-o", "--output", required=True, help="file to write (its name says the format)")
    op = p.add_mutually_exclusive_group(required=True)
    op.add_argument("--swap", nargs=2, type=int, metavar=("A", "B"), help="exchange ids A and B")
    op.add_argument("--merge", nargs=2, type=int, metavar=("FROM", "INTO"), help="rename id FROM to INTO")
    p.add_argument("--from", dest="start", type=non_negative_int, default=0, metavar="F",
                   help="--swap from this frame on (0-based; default 0)")
    p.add_argument("--to", dest="end", type=positive_int, default=None, metavar="G",
                   help="--swap before this frame (default: to the end)")
    console_flags(p, quiet_help="print nothing")
    p.set_defaults(handler=main)


def main(args) -> int:
    from aptrack.core.errors import ConfigError
    from aptrack.io.convert import read_results, write_results
    from aptrack.track.relabel import merge_ids, swap_ids

    if args.merge and (args.start or args.end is not None):
        raise ConfigError("--from and --to go with --swap; --merge renames an id on every frame")
    info, frames, _ = read_results(args.results)
    if args.swap:
        frames = swap_ids(frames, *args.swap, start=args.start, end=args.end)
        what = f"swapped {args.swap[0]} and {args.swap[1]} from frame {args.start}"
    else:
        frames = merge_ids(frames, *args.merge)
        what = f"merged {args.merge[0]} into {args.merge[1]}"
    written = write_results(args.output, info, frames)
    if not args.quiet:
        print(f"{what} -> {', '.join(str(p) for p in written)}")
    return 0

"""Command line: ``aptrack run | models | train | eval | export | synth | bench | track | convert | relabel | plot``.

The CLI owns the console: a progress bar while it runs, a summary table at the
end, and one ``aptrack: error: ...`` line (exit status 2) for anything the user
can fix. Each subcommand is one thin module here: it parses its arguments,
calls the library, and prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from aptrack import __version__
from aptrack.cli import bench, convert, eval, export, models, plot, relabel, run, synth, track, train
from aptrack.core.errors import AptrackError

SUBCOMMANDS = (run, models, train, eval, export, synth, track, bench, convert, relabel, plot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aptrack", description="Track animals and their poses in video.")
    parser.add_argument("--version", action="version", version=f"aptrack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("aptrack: %(message)s"))
    root = logging.getLogger("aptrack")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False
    # Ultralytics logs each model load and frame at INFO; keep its warnings only.
    logging.getLogger("ultralytics").setLevel(logging.WARNING if verbose else logging.ERROR)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(getattr(args, "verbose", False))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    try:
        return args.handler(args)
    except AptrackError as exc:
        print(f"aptrack: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aptrack: interrupted; no output was written under its final name", file=sys.stderr)
        return 130

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
import signal
import sys
import threading

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
    previous = _stop_on_sigterm()
    log_file = None
    try:
        log_file = _open_log_file(getattr(args, "log", None), sys.argv[1:] if argv is None else list(argv))
        code = args.handler(args)
        _to_log_file(log_file, logging.INFO, f"{args.command} finished, exit status {code}")
        return code
    except AptrackError as exc:
        _to_log_file(log_file, logging.ERROR, f"error: {exc}")
        print(f"aptrack: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        _to_log_file(log_file, logging.ERROR, "terminated (SIGTERM)")
        print(f"aptrack: terminated (SIGTERM); no output was written under its final name{_resume_hint(args)}",
              file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        _to_log_file(log_file, logging.ERROR, "interrupted")
        print(f"aptrack: interrupted; no output was written under its final name{_resume_hint(args)}",
              file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if log_file is not None:
            logging.getLogger("aptrack").removeHandler(log_file)
            log_file.close()


def _resume_hint(args) -> str:
    return "; the same command with --resume continues it" if args.command == "run" else ""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster scheduler, ``kill``): stops a run exactly as Ctrl-C does."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _stop_on_sigterm():
    """Make SIGTERM raise :class:`Terminated` in the main thread; returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _open_log_file(path, argv: list[str]) -> logging.Handler | None:
    """``--log FILE``: aptrack's log at INFO level, with times, appended to FILE (unattended runs).

    The console keeps its own level (warnings, or everything with ``-v``).
    """
    if not path:
        return None
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise AptrackError(f"cannot write the log file {path}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("aptrack")
    for console in root.handlers:
        console.setLevel(root.level)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    _to_log_file(handler, logging.INFO, "aptrack " + " ".join(map(str, argv)))
    return handler


def _to_log_file(handler: logging.Handler | None, level: int, message: str) -> None:
    """One line in the log file only (the console has its own message)."""
    if handler is not None:
        handler.handle(logging.LogRecord("aptrack.cli", level, __file__, 0, message, None, None))

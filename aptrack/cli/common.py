"""What the subcommands share: argument types, console formatting, config overrides."""

from __future__ import annotations

import argparse
import dataclasses


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def det_every_value(text: str) -> int | str:
    """``--det-every``: a whole number from 1, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    return positive_int(text)


def streams_value(text: str) -> int | str:
    """``--streams``: a whole number from 1, or ``auto``."""
    return det_every_value(text)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def console_flags(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument("--log", default=None, metavar="FILE",
                        help="also append a plain-text log (INFO level, with times) to FILE, for unattended runs")


def aligned(rows) -> str:
    """``(name, text)`` rows as two left-aligned columns."""
    rows = list(rows)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def figure(value) -> str:
    """A metric for the console: 3 decimals, 'n/a' for missing or NaN."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def load_config(pipeline: str, pose: str | None = None, detector: str | None = None,
                pose_config: str | None = None, max_gap: int | None = None, smooth: str | None = None,
                smooth_min_cutoff: float | None = None, smooth_beta: float | None = None,
                backend: str | None = None, animals: int | None = None, arena: str | None = None):
    """The pipeline preset ``pipeline`` with the pose and detector weights a user named.

    ``pose`` ``"none"`` turns the pose stage off; ``pose_config`` names the model
    preset of a pose checkpoint that does not describe its own (mmpose's);
    ``max_gap`` replaces the preset's ``interpolation.max_gap``; ``smooth``,
    ``smooth_min_cutoff`` and ``smooth_beta`` its ``smoothing`` kind and parameters;
    ``backend`` its ``pose.backend``; ``animals`` its ``tracker.max_animals``.
    ``detector`` ``"background"`` is the background detector (``detector.kind``);
    ``arena`` replaces ``detector.arena``.
    """
    from aptrack.pipeline import load_pipeline

    config = load_pipeline(pipeline)
    if pose is not None:
        pose_weights = None if pose.lower() == "none" else pose
        config = dataclasses.replace(config, pose=dataclasses.replace(config.pose, weights=pose_weights))
    if pose_config is not None:
        config = dataclasses.replace(config, pose=dataclasses.replace(config.pose, model=pose_config))
    if backend is not None:
        config = dataclasses.replace(config, pose=dataclasses.replace(config.pose, backend=backend))
    if detector is not None:
        change = {"kind": "background"} if detector.lower() == "background" else {"kind": "yolo", "weights": detector}
        config = dataclasses.replace(config, detector=dataclasses.replace(config.detector, **change))
    if arena is not None:
        config = dataclasses.replace(config, detector=dataclasses.replace(config.detector, arena=arena))
    if max_gap is not None:
        config = dataclasses.replace(config, interpolation=dataclasses.replace(config.interpolation,
                                                                               max_gap=max_gap))
    if animals is not None:
        config = dataclasses.replace(config, tracker=dataclasses.replace(config.tracker, max_animals=animals))
    changes = {k: v for k, v in (("kind", smooth), ("min_cutoff", smooth_min_cutoff), ("beta", smooth_beta))
               if v is not None}
    if changes:
        config = dataclasses.replace(config, smoothing=dataclasses.replace(config.smoothing, **changes))
    return config


def animals_value(text: str) -> int:
    """``--animals``: how many animals there are, a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of animals, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 animal, got {value}")
    return value


def add_animals_flag(parser) -> None:
    parser.add_argument("--animals", type=animals_value, default=None, metavar="N",
                        help="the number of animals is known and fixed (an arena): exactly N ids over the whole "
                             "video, each detection given to the most likely of them (default: the preset's, "
                             "no limit)")


def add_arena_flag(parser) -> None:
    parser.add_argument("--arena", default=None, metavar="auto|x,y,w,h|MASK",
                        help="look for animals only in the arena: auto (found in the background, with --detector "
                             "background), a rectangle in pixels, or a mask image (non-zero inside)")


def add_backend_flag(parser) -> None:
    from aptrack.pose.config import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="what runs the pose network: torch, or ONNX Runtime (the model is exported to "
                             "ONNX once and cached; an .onnx from aptrack export always runs there); "
                             "default: the preset's (auto: ONNX Runtime on the CPU, torch on a GPU)")


def add_pose_config_flag(parser) -> None:
    parser.add_argument("--pose-config", default=None, metavar="NAME|FILE",
                        help="model preset (aptrack models) of a pose checkpoint that does not describe "
                             "its own architecture, e.g. an mmpose .pth")

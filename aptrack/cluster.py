"""Many videos on a Ray cluster: one task per input, each running :func:`aptrack.runner.process_video`.

Ray schedules, retries and moves the work; aptrack only says what one task is
and what it needs. :func:`run_on_ray` joins a cluster (``address``: a running
cluster's address, or ``"auto"`` for the one this machine belongs to) or, with
``address=None``, starts a local one with ``ray.init()``. Each task declares
``num_cpus`` and, for a CUDA device, ``num_gpus``, so a GPU cluster packs tasks
onto its GPUs; a task whose worker dies is retried once by Ray
(``max_retries=1``), then reported as failed. A task builds its own pipeline
from the config, runs the same frame loop as a sequential run, and writes its
input's outputs under their final names only when it is done, into the output
folder (which must be shared storage on a multi-node cluster).

The settings every task needs travel with it: the pipeline config (a frozen
dataclass), the run options and the environment variables that say where
weights and data are (``APTRACK_*``, ``YOLO_*``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

from aptrack.core.errors import AptrackError, ConfigError
from aptrack.io.inputs import RunInput
from aptrack.io.journal import CHECKPOINT_EVERY
from aptrack.pipeline import PipelineConfig, resolve_device

log = logging.getLogger(__name__)

FORWARDED_ENV_PREFIXES = ("APTRACK_", "YOLO_")


@dataclass(frozen=True)
class RunOptions:
    """What :func:`aptrack.runner.process_video` takes besides the input and the pipeline."""

    output: str
    device: str = "cpu"
    det_every: int = 1
    start: int = 0
    end: int | None = None
    write_video: bool = True
    trails: bool = False
    exports: tuple[str, ...] = ("json", "csv", "mp4")
    reset_each_frame: bool = False
    resume: bool = False
    checkpoint_every: int = CHECKPOINT_EVERY
    batch_frames: int = 1
    streams: int | str = 1
    """Network streams per task (``aptrack run --streams``); one, each task on its own CPUs, unless given."""


@dataclass(frozen=True)
class TaskResult:
    """One input's outcome: its summary, or the one-line reason it failed."""

    source: RunInput
    summary: dict | None = None
    error: str | None = None


def run_input(source: RunInput, config: PipelineConfig, options: RunOptions) -> TaskResult:
    """One input through a pipeline of its own (what a Ray task runs); a user error is returned, not raised."""
    from aptrack.runner import process_video

    try:
        run = process_video(source, config=config, output=options.output, write_video=options.write_video,
                            trails=options.trails, start=options.start, end=options.end,
                            device=options.device, det_every=options.det_every, exports=options.exports,
                            reset_each_frame=options.reset_each_frame, resume=options.resume,
                            checkpoint_every=options.checkpoint_every, batch_frames=options.batch_frames,
                            streams=options.streams)
        for _ in run:
            pass
        return TaskResult(source, summary=run.summary)
    except AptrackError as exc:
        return TaskResult(source, error=str(exc))


def task_resources(device: str, cpus_per_task: float = 1.0) -> dict:
    """Ray resource requests of one task: CPUs, and one GPU when the device is CUDA."""
    resources = {"num_cpus": cpus_per_task}
    # "auto" as the pipeline resolves it; "cuda" asks for a GPU even when this machine has none
    if device.startswith("cuda") or device == "auto" and resolve_device("auto") == "cuda":
        resources["num_gpus"] = 1
    return resources


def run_on_ray(inputs: list[RunInput], config: PipelineConfig, options: RunOptions, address: str | None = None,
               cpus_per_task: float = 1.0, on_done: Callable[[TaskResult], None] | None = None,
               task: Callable[[RunInput, PipelineConfig, RunOptions], TaskResult] = run_input) -> list[TaskResult]:
    """Run every input as one Ray task; returns their results in the order of ``inputs``.

    Parameters
    ----------
    inputs : list of RunInput
    config : PipelineConfig
    options : RunOptions
    address : str, optional
        ``None`` starts a local cluster; ``"auto"`` or ``"HOST:PORT"`` joins one (``ray start --head``).
    cpus_per_task : float
        CPUs each task asks for.
    on_done : callable, optional
        Called with each result as it finishes (a progress bar).
    task : callable
        What a task runs, :func:`run_input` (tests pass others).
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray: pip install 'aptrack[cluster]' (make setup does) [{exc}]") from exc
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    started_here = not ray.is_initialized()
    if started_here:
        try:
            # A new local cluster binds to this machine only (no dashboard either); to serve
            # other machines, start a head node yourself (ray start --head) and pass --ray ADDRESS.
            local = {"_node_ip_address": "127.0.0.1"} if address is None else {}
            ray.init(address=address, logging_level=logging.WARNING, include_dashboard=False,
                     log_to_driver=False, **local)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address or 'a new local cluster'}: {exc}") from exc
    try:
        # the environment goes with each task, so it holds on a cluster started by someone else too
        remote = ray.remote(max_retries=1)(task).options(runtime_env={"env_vars": env},
                                                         **task_resources(options.device, cpus_per_task))
        pending = {remote.remote(source, config, options): i for i, source in enumerate(inputs)}
        results: list[TaskResult | None] = [None] * len(inputs)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died twice, or the task could not run
                    result = TaskResult(inputs[i], error=f"Ray task failed: {type(exc).__name__}: "
                                                        f"{str(exc).splitlines()[0] if str(exc) else ''}")
                results[i] = result
                if on_done is not None:
                    on_done(result)
        return results  # type: ignore[return-value]
    finally:
        if started_here:
            ray.shutdown()

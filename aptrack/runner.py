"""The frame loop: one video (or any stream of frames) through a pipeline.

:func:`iter_frames` is the one loop that every caller shares: ``aptrack run``
through :func:`process_video`, ``aptrack bench`` over the frames of each clip,
a notebook, or a worker on a cluster. :func:`process_video` adds what a
video needs around it: decoding ahead and drawing/encoding behind on their
own threads, the annotated video, JSON and CSV (written under temporary names
and renamed only when the whole video is done), a summary, and the saved
state that lets an interrupted run resume (:mod:`aptrack.io.journal`).
:class:`FrameLoop` is the loop one frame (or a window of frames) at a time.

>>> import aptrack
>>> for animals in aptrack.process_video("dog.mp4"):            # doctest: +SKIP
...     print(animals.frame_index, animals.track_ids, animals.keypoints.shape)
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np

from aptrack import __version__
from aptrack.core.errors import MALFORMED, ConfigError, VideoError, writable_dir
from aptrack.core.instances import Instances
from aptrack.io.exports import DEFAULT_EXPORTS, check_exports, make_writers, run_exports
from aptrack.io.inputs import IMAGE_EXTENSIONS, ImageSequenceReader, RunInput, images_in
from aptrack.io.journal import (CHECKPOINT_EVERY, DeferredStop, RunJournal, SavedRun, input_identity, journal_folder,
                                run_fingerprint)
from aptrack.pipeline import Pipeline, PipelineConfig, StageTimer, build_pipeline, load_pipeline
from aptrack.track.interpolate import GapFiller
from aptrack.track.propagate import StepEvidence
from aptrack.track.smooth import KeypointSmoother

log = logging.getLogger(__name__)

MAX_BATCH_FRAMES = 256
"""The most frames ``batch_frames`` puts through the networks together."""


class FrameStep(NamedTuple):
    """One frame through the pipeline: its index, the image, the tracked animals, the
    detections (with poses) the tracker was given (None on frames without the detector)
    and, when known animals are carried (``known``), all of them, hidden ones included,
    scored by how well each is seen (:attr:`aptrack.track.propagate.IdentityPropagator.carried`;
    None otherwise), with what the propagator had for their boxes (``evidence``,
    :class:`aptrack.track.propagate.StepEvidence`, a diagnosis record of the forward step, which
    the propagator's hindsight may have revised since; None on the first frame,
    without known animals, and on frames held back for gap filling across a resumed run)."""

    index: int
    frame: np.ndarray
    tracked: Instances
    detections: Instances | None
    carried: Instances | None = None
    evidence: StepEvidence | None = None


class FrameLoop:
    """The frame loop one frame at a time: the pipeline, then the gap filling of tracks.

    :meth:`push` runs one frame and returns the steps that are final (with
    ``pipeline.interpolation.max_gap`` > 0, up to ``max_gap`` frames late, once
    no later frame can fill them; with known animals, a further
    ``propagation.hindsight_frames`` late, once the propagator's hindsight
    can no longer revise them); :meth:`flush` returns the rest at the end.
    Between two frames, :meth:`state` is all it remembers (for a resumable run).
    ``boxes`` and ``known`` are :func:`iter_frames`'s.
    """

    def __init__(self, pipeline: Pipeline, boxes: Callable[[int], Instances | None] | None = None,
                 known: Instances | None = None):
        self.pipeline, self.boxes, self.known = pipeline, boxes, known
        max_gap = pipeline.interpolation.max_gap
        self.filler = GapFiller(max_gap) if max_gap > 0 else None
        self._hindsight: list[FrameStep] = []  # known animals' steps that step 9 may still revise

    def push(self, index: int, frame: np.ndarray) -> list[FrameStep]:
        pipeline = self.pipeline
        if self.known is not None:
            tracked = pipeline.track_known(frame, self.known.with_(frame_index=index))
            self.known = None
        else:
            tracked = pipeline(frame, index, None if self.boxes is None else self.boxes(index))
        return self._released(index, frame, tracked)

    def push_many(self, frames: list[tuple[int, np.ndarray]]) -> list[FrameStep]:
        """:meth:`push` of several frames in order, their detector and pose passes together where the
        pipeline :attr:`~aptrack.pipeline.Pipeline.batches_frames` (same results, for a GPU's sake)."""
        if len(frames) < 2 or not self.measures_ahead:
            return [step for index, frame in frames for step in self.push(index, frame)]
        return self.push_measured(frames, self.pipeline.measure(frames))

    @property
    def measures_ahead(self) -> bool:
        """Whether frames can be measured (detector and pose) before the frames ahead of them are
        tracked: the pipeline :attr:`~aptrack.pipeline.Pipeline.batches_frames`, and no known
        animals or given boxes."""
        return self.known is None and self.boxes is None and self.pipeline.batches_frames

    def push_measured(self, frames: list[tuple[int, np.ndarray]], found: list[Instances]) -> list[FrameStep]:
        """:meth:`push` of frames whose detections with poses ``found`` (one per frame,
        :meth:`~aptrack.pipeline.Pipeline.measure`) are known: only the tracker's part is left."""
        steps = []
        for (index, frame), boxes in zip(frames, found):
            steps += self._released(index, frame, self.pipeline.track_measured(frame, boxes))
        return steps

    def _released(self, index: int, frame: np.ndarray, tracked: Instances) -> list[FrameStep]:
        """The steps final once frame ``index`` is tracked (itself, or with gap filling earlier ones)."""
        pipeline = self.pipeline
        propagator = pipeline.propagator
        carried, evidence = (propagator.carried, propagator.evidence) if propagator is not None else (None, None)
        step = FrameStep(index, frame, tracked, pipeline.last_detections, carried, evidence)
        return self._filled(self._revised(step, propagator))

    def _revised(self, step: FrameStep, propagator) -> list[FrameStep]:
        """The known animals' steps final once ``step`` is in: each is held back ``propagator.lag`` frames,
        and takes the revisions of its animals (:attr:`aptrack.track.propagate.IdentityPropagator.revisions`)
        that come meanwhile."""
        lag = propagator.lag if propagator is not None and propagator.started else 0
        if not lag and not self._hindsight:
            return [step]
        revised = {r.index: r for r in propagator.revisions} if propagator is not None else {}
        held = [s if s.index not in revised else
                s._replace(carried=revised[s.index].carried,
                           tracked=revised[s.index].carried.take(np.flatnonzero(revised[s.index].visible)))
                for s in self._hindsight] + [step]
        cut = max(len(held) - lag, 0)
        self._hindsight = held[cut:]
        return held[:cut]

    def _filled(self, steps: list[FrameStep]) -> list[FrameStep]:
        """``steps`` through the gap filling of tracks, when on."""
        if self.filler is None:
            return steps
        return [held._replace(tracked=filled)
                for step in steps for held, filled in self.filler.push(step.tracked, step)]

    def flush(self) -> list[FrameStep]:
        steps, self._hindsight = self._filled(self._hindsight), []
        if self.filler is None:
            return steps
        return steps + [held._replace(tracked=filled) for held, filled in self.filler.flush()]

    def state(self) -> dict:
        """The pipeline's :meth:`~aptrack.pipeline.Pipeline.state` and the frames held back for gap
        filling (without their images: :meth:`give_frames` puts them back after a resume)."""
        held = None
        if self.filler is not None:
            held = self.filler.state()
            held["held"] = [(index, (step.detections, step.carried), parts) for index, step, parts in held["held"]]
        return {"pipeline": self.pipeline.state(), "filler": held}

    def load_state(self, state: dict) -> None:
        self.pipeline.load_state(state["pipeline"])
        if self.filler is not None and state["filler"] is not None:
            held = dict(state["filler"])
            held["held"] = [(index, FrameStep(index, None, parts[0], detections, carried), parts)
                            for index, (detections, carried), parts in held["held"]]
            self.filler.load_state(held)

    def held_indices(self) -> list[int]:
        """The frames held back for gap filling, in order."""
        return [] if self.filler is None else [index for index, _, _ in self.filler.state()["held"]]

    def give_frames(self, frames: dict[int, np.ndarray]) -> None:
        """Put the images back into the held frames (after :meth:`load_state`), for drawing."""
        if self.filler is None:
            return
        held = self.filler.state()
        held["held"] = [(index, step._replace(frame=frames.get(index)), parts) for index, step, parts in held["held"]]
        self.filler.load_state(held)


def iter_steps(pipeline: Pipeline, frames: Iterable[tuple[int, np.ndarray]],
               boxes: Callable[[int], Instances | None] | None = None,
               known: Instances | None = None) -> Iterator[FrameStep]:
    """Run ``pipeline`` on each frame in order; see :func:`iter_frames`, which this is
    with each frame's detections too.

    With ``pipeline.interpolation.max_gap`` > 0 the gaps of tracks are filled
    (:mod:`aptrack.track.interpolate`): each step is then yielded up to
    ``max_gap`` frames late, still in order, once no later frame can fill it.
    With ``known`` animals, each step is yielded ``propagation.hindsight_frames``
    frames late (step 9 of :mod:`aptrack.track.propagate` may revise it meanwhile).
    """
    loop = FrameLoop(pipeline, boxes, known)
    for index, frame in timed_frames(frames, pipeline.timer):
        yield from loop.push(index, frame)
    yield from loop.flush()


def iter_frames(pipeline: Pipeline, frames: Iterable[tuple[int, np.ndarray]],
                boxes: Callable[[int], Instances | None] | None = None,
                known: Instances | None = None) -> Iterator[tuple[int, np.ndarray, Instances]]:
    """Run ``pipeline`` on each frame in order.

    Parameters
    ----------
    pipeline : Pipeline
    frames : iterable of (int, (H, W, 3) uint8 BGR array)
        Frame index and frame; time spent waiting for the next one is timed as ``read``.
    boxes : callable, optional
        ``boxes(frame_index)`` gives boxes that replace the detector on that
        frame (ground truth, or a user's), or None to run the detector.
    known : Instances, optional
        The animals (boxes with track ids) on the first frame: they are carried
        through the frames that follow (:meth:`Pipeline.track_known`), and no
        other animal gets an id.

    Yields
    ------
    (frame_index, frame, tracked animals)
        With gap filling on (``pipeline.interpolation``), up to ``max_gap``
        frames behind the pipeline.
    """
    for step in iter_steps(pipeline, frames, boxes, known):
        yield step.index, step.frame, step.tracked


def timed_frames(frames: Iterable[tuple[int, np.ndarray]], timer: StageTimer) -> Iterator[tuple[int, np.ndarray]]:
    """``frames`` as they are, with the time spent waiting for each one added to ``timer`` as ``read``."""
    it = iter(frames)
    while True:
        with timer("read"):  # time spent waiting for the decoder
            item = next(it, None)
        if item is None:
            return
        yield item


class VideoRun:
    """One video through a pipeline; iterate it for each frame's tracked animals.

    Build it with :func:`process_video`. Errors a user can fix (an unreadable
    video, bad weights, an unwritable folder, a saved run that does not match)
    are raised when it is built, before any frame runs. Outputs are committed
    when the last frame has been processed; a run stopped early (an exception,
    a signal, or a ``break`` out of the loop) leaves nothing under a final
    name, and its journal (:mod:`aptrack.io.journal`) lets ``resume`` continue
    it. After a full iteration, :attr:`summary` holds frames, animals, ids,
    frames/s, ms per stage and the output paths.
    """

    def __init__(self, video: str | Path, pipeline: Pipeline | None = None,
                 config: str | Path | PipelineConfig = "default", output: str | Path | None = None,
                 write_video: bool = True, trails: bool = False, start: int = 0, end: int | None = None,
                 device: str = "auto", det_every: int = 1, init_boxes: Instances | None = None,
                 exports: str | tuple[str, ...] = DEFAULT_EXPORTS, reset_each_frame: bool = False,
                 resume: bool = False, checkpoint_every: int = CHECKPOINT_EVERY, batch_frames: int = 1,
                 streams: int | str = "auto"):
        self.exports = run_exports(exports, write_video)
        self.config = config if isinstance(config, PipelineConfig) else load_pipeline(config)
        self.source = as_run_input(video)
        self.video, self.stem = self.source.path, self.source.stem
        self.reset_each_frame = reset_each_frame
        if resume and init_boxes is not None:
            raise ConfigError("--resume cannot continue a run that follows --init-boxes (its single-object "
                              "trackers' state is not saved): run it again without --resume")
        if checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be 0 (off) or a number of frames, got {checkpoint_every}")
        if not 1 <= batch_frames <= MAX_BATCH_FRAMES:
            raise ConfigError(f"--batch-frames must be in [1, {MAX_BATCH_FRAMES}] frames, got {batch_frames}")
        self.batch_frames = batch_frames
        self.reader = open_reader(self.source, start, end)
        try:
            self.out_dir = writable_dir(Path(output)) if output is not None else None
            if pipeline is None:
                pipeline, _ = build_pipeline(self.config, device, det_every, streams)
            models = pipeline.models
        except BaseException:
            self.reader.close()
            raise
        self.pipeline = pipeline
        self.init_boxes = init_boxes
        self.write_video = "mp4" in self.exports and self.out_dir is not None
        self.trails = trails
        self.checkpoint_every = checkpoint_every
        layout = pipeline.layout
        r = self.reader
        self.info = {
            "video": str(self.video.resolve()), "images": len(self.source.images) or None,
            "width": r.width, "height": r.height, "fps": r.fps,
            "start": r.start, "end": r.end, "aptrack_version": __version__, "pipeline": self.config.name,
            "pipeline_base": self.config.base,
            "det_every": pipeline.det_every, "models": models,
            "init_boxes": None if init_boxes is None else len(init_boxes),
            "keypoint_names": list(layout.keypoints) if layout else [],
            "skeleton": [list(p) for p in layout.skeleton] if layout else [],
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self.summary: dict | None = None
        self.journal: RunJournal | None = None
        self.saved: SavedRun | None = None
        """The saved state this run resumes from (``resume``), None when it starts at its first frame."""
        try:
            check_exports(self.exports, has_pose=bool(self.info["keypoint_names"]))
            if self.out_dir is not None and init_boxes is None and checkpoint_every:
                options = {"start": r.start, "end": r.end, "det_every": pipeline.det_every,
                           "exports": list(self.exports), "trails": trails, "reset_each_frame": reset_each_frame,
                           "batch_frames": batch_frames}
                fingerprint = run_fingerprint(input_identity(self.video, self.source.images), self.config,
                                              models, options)
                self.journal = RunJournal(journal_folder(self.out_dir, self.stem), fingerprint)
                if resume:
                    self.saved = self.journal.load()
                elif self.journal.states():
                    log.warning("%s: a saved partial run is replaced by this new one (--resume continues it)",
                                self.stem)
            if self.saved is not None:
                self.info["created"] = str(self.saved.state.get("created", self.info["created"]))
                log.info("%s: resuming before frame %s (%d frames saved)", self.stem,
                         self.saved.state.get("next_frame"), self.saved.frames_saved)
        except BaseException:
            self.reader.close()
            raise

    @property
    def expected_frames(self) -> int | None:
        """Frames the run will process, when the video's header says."""
        return self.reader.expected_frames

    def close(self) -> None:
        """Release the video (done by a full iteration; needed only if it never runs)."""
        self.reader.close()

    def __iter__(self) -> Iterator[Instances]:
        from aptrack.io.background import BackgroundWorker, Prefetcher
        from aptrack.io.draw import TrailHistory, annotate
        from aptrack.io.results import ResultsWriter
        from aptrack.io.video import AtomicVideoWriter

        pipeline, config, stem, journal, saved = self.pipeline, self.config, self.stem, self.journal, self.saved
        video_out = results = frames_in = output_worker = None
        writers: list = []
        track_ids: set[int] = set()
        animals = max_animals = frames = interpolated = 0
        out_timer = StageTimer()  # drawing and writing, timed on their own thread
        trails = TrailHistory(config.draw.trail_length) if self.trails else None
        committed = False

        def emit(item) -> None:
            frame, tracked, raw = item
            with out_timer("write"):
                results.write(tracked, raw_keypoints=None if raw is tracked else raw.keypoints)
                for writer in writers:
                    writer.write(tracked)
            if video_out is not None:
                with out_timer("draw"):
                    if trails is not None:
                        trails.update(tracked)
                    drawn = annotate(frame, tracked, pipeline.layout, config.draw, trails)
                with out_timer("write"):
                    video_out.write(drawn)

        def deliver(frame, tracked: Instances, raw: Instances) -> None:
            """One frame's final results: counted, and handed to the writers."""
            nonlocal frames, animals, interpolated, max_animals
            frames += 1
            animals += len(tracked)
            interpolated += int(tracked.interpolated.sum())
            max_animals = max(max_animals, len(tracked))
            track_ids.update(int(t) for t in tracked.track_ids)
            if output_worker is not None:
                output_worker.submit((frame, tracked, raw))

        try:
            if journal is not None and saved is None:
                journal.discard()  # a fresh start: an earlier partial run's files go
            if self.out_dir is not None:
                writers = make_writers(self.exports, self.out_dir, stem, self.info)
                results = ResultsWriter(self.out_dir, stem, self.info, self.info["keypoint_names"],
                                        json_file="json" in self.exports, csv_file="csv" in self.exports)
                if self.write_video:
                    video_out = AtomicVideoWriter(self.out_dir / f"{stem}.mp4", self.reader.fps,
                                                  (self.reader.width, self.reader.height))
            started = time.perf_counter()
            earlier = 0.0  # seconds spent before the resume
            pipeline.reset()  # a pipeline reused from an earlier video starts afresh,
            pipeline.timer = StageTimer()  # and times this video alone
            pipeline.start_video(self.reader.sample)
            loop = FrameLoop(pipeline, known=self.init_boxes)
            smoother = KeypointSmoother(config.smoothing, self.reader.fps)
            next_frame = self.reader.start
            if saved is not None:
                state = saved.state
                try:
                    loop.load_state(state["loop"])
                    smoother.load_state(state["smoother"])
                    earlier, next_frame = float(state["elapsed"]), int(state["next_frame"])
                    timers = {str(k): float(v) for k, v in state["timers"].items()}
                except MALFORMED as exc:
                    raise ConfigError(f"the saved state in {saved.folder} does not fit this run ({type(exc).__name__}: "
                                      f"{str(exc)[:80]}); run without --resume to start afresh") from None
                for stage, seconds in timers.items():
                    pipeline.timer.seconds[stage] += seconds
                if not self.write_video:  # no frame to draw: straight to the first frame not processed
                    self.reader.skip_to(next_frame)
            if results is not None:
                output_worker = BackgroundWorker(emit)
            # decoding runs ahead and drawing/encoding runs behind on their own threads
            frames_in = Prefetcher(self.reader)
            if saved is not None:
                # the saved frames' results go to the fresh outputs again, with their frames for the video
                for tracked, raw_keypoints in saved.results():
                    frame = _next_frame(frames_in, self.reader.start + frames) if self.write_video else None
                    deliver(frame, tracked, tracked if raw_keypoints is None else tracked.with_(keypoints=raw_keypoints))
                    yield tracked
                if self.write_video:  # the frames held back for gap filling get their images back
                    loop.give_frames({i: _next_frame(frames_in, i) for i in loop.held_indices()})
            stream = _each_alone(pipeline, frames_in) if self.reset_each_frame else frames_in
            window = 1 if self.reset_each_frame else self.batch_frames  # reset per frame: one at a time
            windows = _windows(timed_frames(stream, pipeline.timer), window)
            ahead = len(pipeline.streams) > 1 and loop.measures_ahead and not self.reset_each_frame
            measured = measured_ahead(pipeline, windows) if ahead else ((w, None) for w in windows)
            since_checkpoint = 0
            with DeferredStop() as stop, contextlib.closing(measured):
                for frames_now, found in measured:
                    for index, _ in frames_now:
                        if index != next_frame:
                            raise VideoError(f"{self.video}: frame {index} came where frame {next_frame} was due")
                        next_frame += 1
                    steps = loop.push_many(frames_now) if found is None else loop.push_measured(frames_now, found)
                    for step in steps:
                        tracked = smoother(step.tracked)  # the same object when smoothing is off
                        if journal is not None:
                            journal.record(tracked, step.tracked)
                        deliver(step.frame, tracked, step.tracked)
                        yield tracked
                    since_checkpoint += len(frames_now)
                    if journal is not None and (since_checkpoint >= self.checkpoint_every or stop.requested):
                        journal.checkpoint(self._state(loop, smoother, next_frame, pipeline.timer,
                                                       earlier + time.perf_counter() - started))
                        since_checkpoint = 0
                    if stop.requested:
                        if journal is not None:
                            log.warning("%s: stopped after frame %d, its state saved: run again with --resume "
                                        "to continue", stem, next_frame - 1)
                        stop.stop_now()
                for step in loop.flush():
                    tracked = smoother(step.tracked)
                    deliver(step.frame, tracked, step.tracked)
                    yield tracked
            if output_worker is not None:
                output_worker.join()
            elapsed = earlier + time.perf_counter() - started
            outputs = {"video": str(video_out.path) if video_out else None,
                       "json": str(results.json_path) if results and results.json_path else None,
                       "csv": str(results.csv_path) if results and results.csv_path else None}
            for writer in writers:
                outputs.update({p.name[len(stem):].lstrip("_.").replace(".", "_"): str(p) for p in writer.paths})
            summary = {
                "frames": frames, "animals": animals, "max_animals_per_frame": max_animals,
                "tracks": len(track_ids), "interpolated": interpolated, "seconds": round(elapsed, 3),
                "fps": round(frames / elapsed, 2) if elapsed > 0 else float("nan"),
                "ms_per_frame": {**pipeline.timer.ms_per_frame(frames), **out_timer.ms_per_frame(frames)},
                "outputs": outputs, "video_codec": video_out.fourcc if video_out else None,
                "streams": len(pipeline.streams) if ahead else 1,
            }
            if video_out is not None:
                video_out.commit()
            for writer in writers:
                writer.commit()
            if results is not None:
                results.commit(summary)
            committed = True
            self.summary = summary
        finally:
            if output_worker is not None:
                output_worker.close()
            if frames_in is not None:
                frames_in.close()
            self.reader.close()
            if video_out is not None:
                video_out.close()
            if results is not None:
                results.close()
            for writer in writers:
                writer.close()
            if journal is not None and committed:
                journal.discard()

    def _state(self, loop: FrameLoop, smoother: KeypointSmoother, next_frame: int, timer: StageTimer,
               elapsed: float) -> dict:
        """What a resumed run needs besides the saved results: the loop's and the filters' state after
        the frame before ``next_frame``, and the run's time so far (for its summary)."""
        return {"next_frame": next_frame, "loop": loop.state(), "smoother": smoother.state(),
                "created": self.info["created"], "elapsed": elapsed,
                "timers": {k: float(v) for k, v in timer.seconds.items()}}


def measured_ahead(pipeline: Pipeline, windows: Iterable[list[tuple[int, np.ndarray]]]
                   ) -> Iterator[tuple[list[tuple[int, np.ndarray]], list[Instances]]]:
    """Each window of ``(frame_index, frame)`` with its detections and poses, in order, measured by
    the pipeline's :attr:`~aptrack.pipeline.Pipeline.streams` on threads of their own.

    One window per stream is in flight while the caller tracks the oldest one; each job takes
    a stream no other job holds. Closing the generator (a stop, an error) drops the windows not
    started and waits for those running. An error in a job is raised where its window is due.
    """
    streams = len(pipeline.streams)
    free: queue.SimpleQueue[int] = queue.SimpleQueue()
    for n in range(streams):
        free.put(n)

    def job(frames: list[tuple[int, np.ndarray]]) -> list[Instances]:
        n = free.get()  # never waits: there are as many streams as threads
        try:
            return pipeline.measure(frames, n)
        finally:
            free.put(n)

    pending: collections.deque = collections.deque()
    pool = ThreadPoolExecutor(streams, thread_name_prefix="aptrack-stream")
    try:
        for window in windows:
            pending.append((window, pool.submit(job, window)))
            if len(pending) > streams:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def _windows(frames: Iterable[tuple[int, np.ndarray]], size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    """``frames`` in consecutive lists of ``size`` (the last one shorter)."""
    window: list[tuple[int, np.ndarray]] = []
    for item in frames:
        window.append(item)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def _next_frame(frames: Iterator[tuple[int, np.ndarray]], index: int) -> np.ndarray:
    """The next frame of ``frames``, which must be frame ``index`` (replaying a saved run)."""
    item = next(frames, None)
    if item is None or item[0] != index:
        raise VideoError(f"the video ends before frame {index}, which the saved run had processed")
    return item[1]


def as_run_input(video) -> RunInput:
    """A :class:`RunInput` for a video file, an image, or an image folder (its images, one sequence)."""
    if isinstance(video, RunInput):
        return video
    path = Path(video)
    if path.is_dir():
        return RunInput(path, path.name, tuple(images_in(path)))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return RunInput(path, path.stem, (path,))
    return RunInput(path, path.stem)


def open_reader(source: RunInput, start: int = 0, end: int | None = None):
    """The frame reader of ``source``: a video's, or an image sequence's."""
    from aptrack.io.video import VideoReader

    if source.is_images:
        return ImageSequenceReader(source.images, start=start, end=end)
    if source.path.is_dir():
        raise VideoError(f"no image in {source.path}")
    return VideoReader(source.path, start=start, end=end)


def _each_alone(pipeline: Pipeline, frames):
    """``frames`` with the pipeline reset before each one (``--images-as independent``)."""
    for item in frames:
        pipeline.reset()
        yield item


def process_video(video: str | Path, pipeline: Pipeline | None = None,
                  config: str | Path | PipelineConfig = "default", output: str | Path | None = None,
                  write_video: bool = True, trails: bool = False, start: int = 0, end: int | None = None,
                  device: str = "auto", det_every: int = 1, init_boxes: Instances | None = None,
                  exports: str | tuple[str, ...] = DEFAULT_EXPORTS, reset_each_frame: bool = False,
                  resume: bool = False, checkpoint_every: int = CHECKPOINT_EVERY, batch_frames: int = 1,
                  streams: int | str = "auto") -> VideoRun:
    """Track the animals of one video; iterate the result for each frame's :class:`Instances`.

    Parameters
    ----------
    video : str, Path or RunInput
        A video file OpenCV can decode, an image, or a folder of images (one
        sequence, in natural order); or a :class:`aptrack.io.inputs.RunInput`
        from :func:`aptrack.io.inputs.expand_inputs` (its ``stem`` names the outputs).
    pipeline : Pipeline, optional
        A pipeline already built (its models are reused; call ``pipeline.reset()``
        between videos). Default: built from ``config``.
    config : str, Path or PipelineConfig
        Pipeline preset name, YAML file, or config (default ``"default"``); its
        ``draw`` section styles the annotated video.
    output : str or Path, optional
        Folder for the ``exports`` (by default ``<stem>.json``, ``<stem>.csv``
        and, with ``write_video``, ``<stem>.mp4``). None writes nothing.
    write_video, trails : bool
        Write the annotated video; draw motion trails on it.
    start, end : int
        Frame range ``[start, end)``, 0-based.
    device : {"auto", "cpu", "cuda"}
    det_every : int
        Run the detector on every n-th frame; the tracker predicts in between.
    init_boxes : Instances, optional
        The animals (boxes with track ids) on the first frame (``start``), as
        :func:`aptrack.io.init_boxes.load_init_boxes` reads them: exactly these
        are followed through the video (:meth:`Pipeline.track_known`).
    exports : str or tuple of str
        Output formats (:data:`aptrack.io.exports.EXPORT_FORMATS`, comma-separated or a
        tuple): ``json``, ``csv``, ``mp4`` (the annotated video, also needs
        ``write_video``), ``mot``, ``dlc`` and ``slp`` (see :mod:`aptrack.io.exports`).
    reset_each_frame : bool
        Reset the pipeline before every frame: images that are not a sequence.
    resume : bool
        Continue the interrupted run of this input into ``output`` from its last saved
        state (:mod:`aptrack.io.journal`); the outputs are those an uninterrupted run
        writes. With nothing saved, the run starts at its first frame.
    checkpoint_every : int
        Frames between two saved states (0: none; a run is then not resumable).
        SIGINT and SIGTERM also save one, after the frame being processed.
    batch_frames : int
        Frames that go through the detector and the pose network together (a GPU's
        throughput; the same results). Only where the pipeline
        :attr:`~aptrack.pipeline.Pipeline.batches_frames` (every frame detected, no
        ``init_boxes``, not the background detector); otherwise one at a time.
    streams : int or "auto"
        Copies of the detector and pose networks measuring the next frames (or windows of
        ``batch_frames``) at the same time on their own threads, each with its share of the
        cores, while the tracker takes the results in order: the same results, more frames
        a second on a CPU (:func:`aptrack.pipeline.resolve_streams`; ``auto``: 2 on a CPU with
        2 cores or more, 1 on a GPU). For a ``pipeline`` given, its own
        :attr:`~aptrack.pipeline.Pipeline.streams`. Where frames cannot be measured ahead
        (as for ``batch_frames``), one.

    Returns
    -------
    VideoRun
        Iterable of per-frame tracked animals; ``.summary`` after the last frame.

    Raises
    ------
    AptrackError
        For anything a user can fix (video, weights, config, output folder).
    """
    return VideoRun(video, pipeline, config, output, write_video, trails, start, end, device, det_every,
                    init_boxes, exports, reset_each_frame, resume, checkpoint_every, batch_frames, streams)

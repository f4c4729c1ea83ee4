"""Video input and output off the main thread, so decoding, drawing and encoding
overlap the networks.

OpenCV's decode and encode calls and NumPy's array work release the GIL, so on
a CPU they fill the gaps the networks' thread pools leave. Both helpers keep
order, hold a bounded number of frames (memory stays flat) and hand any
exception from their thread back to the caller.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

_DONE = object()


class Prefetcher:
    """Iterate over ``iterable`` in a background thread, at most ``depth`` items ahead.

    An exception raised by the iterable is raised again by ``next()`` in the
    consumer, after the items that came before it.
    """

    def __init__(self, iterable: Iterable, depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True,
                                        name="aptrack-prefetch")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put((item, None)):
                    return
        except Exception as exc:  # handed to the consumer thread, which raises it
            self._put((None, exc))
            return
        self._put((_DONE, None))

    def __iter__(self):
        return self

    def __next__(self):
        item, exc = self._queue.get()
        if exc is not None:
            raise exc
        if item is _DONE:
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop reading ahead (the iterable is left where it is)."""
        self._stop.set()
        self._thread.join(timeout=5)


class BackgroundWorker:
    """Call ``fn(item)`` for each submitted item, in order, on one background thread.

    The first exception ``fn`` raises is raised again by the next ``submit``
    or by ``join``; later items are then skipped.
    """

    def __init__(self, fn: Callable, depth: int = 4):
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="aptrack-writer")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._fn(item)
                except Exception as exc:  # handed to the submitting thread, which raises it
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, item) -> None:
        self._raise()
        self._queue.put(item)

    def join(self) -> None:
        """Wait until every submitted item is done; raise the worker's exception if there was one."""
        self.close()
        self._raise()

    def close(self) -> None:
        """Finish the items already submitted and stop the thread, raising nothing."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()

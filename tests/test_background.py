"""Background reading and writing keep order, stay bounded and hand errors back."""

import threading
import time

import pytest

from aptrack.io.background import BackgroundWorker, Prefetcher


def test_prefetcher_keeps_order_and_raises_the_source_error_after_the_good_items():
    def source():
        yield from range(5)
        raise OSError("disk gone")

    pre = Prefetcher(source(), depth=2)
    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in pre:
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    pre.close()


def test_prefetcher_reads_at_most_depth_items_ahead_and_close_stops_it():
    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    pre = Prefetcher(source(), depth=3)
    assert next(pre) == 0
    time.sleep(0.3)
    assert len(produced) <= 1 + 3 + 1   # taken, queued, one waiting to be queued
    pre.close()
    assert not pre._thread.is_alive()


def test_worker_runs_items_in_order_on_another_thread():
    seen, threads = [], set()

    def fn(item):
        seen.append(item)
        threads.add(threading.get_ident())

    worker = BackgroundWorker(fn, depth=2)
    for i in range(20):
        worker.submit(i)
    worker.join()
    assert seen == list(range(20)) and threading.get_ident() not in threads


def test_worker_error_is_raised_by_join_and_later_items_are_skipped():
    seen = []

    def fn(item):
        if item == 3:
            raise ValueError("cannot encode")
        seen.append(item)

    worker = BackgroundWorker(fn, depth=1)
    with pytest.raises(ValueError, match="cannot encode"):
        for i in range(10):
            worker.submit(i)
        worker.join()
    worker.close()  # stopping after an error raises nothing
    assert seen == [0, 1, 2]

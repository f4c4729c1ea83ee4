import numpy as np
import pytest
from conftest import write_video

from aptrack.core.errors import VideoError
from aptrack.io.video import AtomicVideoWriter, VideoReader


def test_reader_streams_a_range_with_indices(tmp_path):
    path = write_video(tmp_path / "v.avi", frames=12)
    with VideoReader(path, start=3, end=7) as reader:
        assert (reader.width, reader.height) == (64, 48) and reader.expected_frames == 4
        got = [(i, f[15, 2 + i:12 + i].mean()) for i, f in reader]
    assert [i for i, _ in got] == [3, 4, 5, 6]
    assert all(v > 200 for _, v in got)  # the square sits where frame i drew it


def test_start_past_the_end_and_bad_range(tmp_path):
    path = write_video(tmp_path / "v.avi", frames=5)
    with pytest.raises(VideoError, match="past the end"):
        VideoReader(path, start=9)
    with pytest.raises(VideoError, match="bad frame range"):
        VideoReader(path, start=4, end=2)


def test_writer_commits_atomically_or_leaves_nothing(tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    w = AtomicVideoWriter(tmp_path / "a.mp4", 10.0, (64, 48))
    w.write(frame)
    assert not (tmp_path / "a.mp4").exists()
    w.commit()
    w.close()
    assert (tmp_path / "a.mp4").stat().st_size > 0
    w = AtomicVideoWriter(tmp_path / "b.mp4", 10.0, (64, 48))
    w.write(frame)
    w.close()  # no commit: an interrupted run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]

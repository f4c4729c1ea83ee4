"""aptrack run --ray on a real local Ray cluster: the same results as a sequential run, retries."""

import os
import sys

import pytest
from conftest import write_video

ray = pytest.importorskip("ray")

from aptrack.cli import main  # noqa: E402
from aptrack.cluster import RunOptions, TaskResult, run_on_ray  # noqa: E402
from aptrack.io.inputs import RunInput  # noqa: E402
from aptrack.pipeline import PipelineConfig  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test tasks below travel by value
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_videos_on_ray_give_the_files_of_a_sequential_run(tmp_path, mirror, capsys, local_cluster):
    data = tmp_path / "videos"
    data.mkdir()
    write_video(data / "a.avi", 4)
    write_video(data / "b.avi", 5)
    common = ["--pose", "none", "--no-video", "--export", "csv,mot,json", "--device", "cpu", "-q"]
    assert main(["run", str(data), "-o", str(tmp_path / "seq"), *common]) == 0
    code = main(["run", str(data), "-o", str(tmp_path / "ray"), "--ray", "auto", *common[:-1]])
    assert code == 0, capsys.readouterr().out
    for name in ("a.csv", "b.csv", "a_mot.txt", "b_mot.txt"):
        assert (tmp_path / "seq" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    import json
    seq, par = (json.loads((tmp_path / d / "b.json").read_text()) for d in ("seq", "ray"))
    assert seq["annotations"] == par["annotations"] and seq["summary"]["frames"] == par["summary"]["frames"] == 5


def _dies_once(source, config, options):
    """Kills its worker on the first attempt (a marker file says it tried), then succeeds."""
    marker = os.path.join(options.output, f"{source.stem}.tried")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return TaskResult(source, summary={"frames": 1})


def _always_dies(source, config, options):
    os._exit(1)


def test_a_killed_worker_is_retried_once_then_reported(tmp_path, local_cluster):
    options = RunOptions(output=str(tmp_path))
    sources = [RunInput(tmp_path / "x.avi", "x")]
    assert run_on_ray(sources, PipelineConfig(), options, task=_dies_once)[0].summary == {"frames": 1}
    failed = run_on_ray(sources, PipelineConfig(), options, task=_always_dies)[0]
    assert failed.summary is None and "Ray task failed" in failed.error

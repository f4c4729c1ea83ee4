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


def test_a_ray_rerun_with_resume_skips_finished_videos_and_resumes_partial_ones(tmp_path, mirror, capsys,
                                                                              local_cluster, monkeypatch):
    import json
    import time

    from aptrack.io.journal import RunJournal, journal_folder
    from aptrack.core.statefile import read_state

    data = tmp_path / "videos"
    data.mkdir()
    for name, frames in (("a", 4), ("b", 9), ("c", 5)):
        write_video(data / f"{name}.avi", frames)
    out = tmp_path / "out"
    common = ["--pose", "none", "--no-video", "--export", "csv,json", "--device", "cpu", "-q", "--checkpoint-every", "2"]
    assert main(["run", str(data / "a.avi"), "-o", str(out), *common]) == 0
    real = RunJournal.checkpoint

    def stop_after_saving(self, state):
        real(self, state)
        raise KeyboardInterrupt  # as a scheduler's kill would, once a state is saved

    monkeypatch.setattr(RunJournal, "checkpoint", stop_after_saving)
    assert main(["run", str(data / "b.avi"), "-o", str(out), *common]) == 130
    monkeypatch.setattr(RunJournal, "checkpoint", real)
    began = read_state(RunJournal(journal_folder(out, "b"), {}).states()[0])["state"]["created"]
    finished = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith("a.")}
    time.sleep(1.1)  # a run started afresh would have another creation time
    capsys.readouterr()
    assert main(["run", str(data), "-o", str(out), "--ray", "auto", "--resume", *common[:-3]]) == 0
    table = capsys.readouterr().out
    assert "finished earlier, skipped" in table and "2 done, 1 skipped, 0 failed" in table
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith("a.")} == finished
    resumed = json.loads((out / "b.json").read_text())
    assert resumed["info"]["created"] == began and resumed["summary"]["frames"] == 9
    assert main(["run", str(data / "b.avi"), "-o", str(tmp_path / "seq"), *common]) == 0
    assert (out / "b.csv").read_bytes() == (tmp_path / "seq" / "b.csv").read_bytes()
    assert json.loads((tmp_path / "seq" / "b.json").read_text())["annotations"] == resumed["annotations"]
    assert (out / "c.csv").is_file() and not [p for p in out.iterdir() if p.name.startswith(".")]

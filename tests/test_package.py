"""The package's shape and install: import contracts, a built wheel that works outside the checkout."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import DOG_CLIP, PROJECT, SHARED_ASSETS, YOLO_INT8

BIN = Path(sys.executable).parent


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: layers, core imports nothing, cli imported by nothing."""
    proc = subprocess.run([str(BIN / "lint-imports"), "--config", str(PROJECT / "pyproject.toml")],
                          cwd=PROJECT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed with --no-deps into a bare folder."""
    out = tmp_path_factory.mktemp("wheel")
    # build from a copy of the files git would commit, so no earlier build/ folder leaks in
    source = out / "source"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=PROJECT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (PROJECT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PROJECT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
                            str(source)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel = next(out.glob("aptrack-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    packages = sorted(d.name for d in (PROJECT / "aptrack").iterdir() if d.is_dir() and list(d.glob("*.py")))
    for package in packages:  # every subpackage, with an __init__ that git tracks (not ignored)
        assert f"aptrack/{package}/__init__.py" in names, package
    for member in ("aptrack/resources/pipelines/default.yaml", "aptrack/resources/configs/layouts/ap10k.yaml",
                   "aptrack/resources/configs/models/aptrack-pose-mnv2-256-ft4.yaml",
                   "aptrack/resources/weights/registry.yaml",
                   "aptrack/resources/weights/aptrack_pose_mnv2_256_ft4_animalpose.pt",
                   "aptrack/resources/weights/aptrack_yolov8n_occluded_fp32.onnx", "aptrack/resources/pipelines/known.yaml"):
        assert member in names
    target = out / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                              str(target), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    return target


def run_installed(target: Path, cwd: Path, *args, **env):
    environ = {**os.environ, "PYTHONPATH": str(target), "APTRACK_CACHE": str(cwd / "cache"), **env}
    if "APTRACK_MIRROR" not in env:
        environ.pop("APTRACK_MIRROR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environ, capture_output=True, text=True)


def test_installed_wheel_lists_its_models_from_any_folder(installed_wheel, tmp_path):
    where = run_installed(installed_wheel, tmp_path, "-c", "import aptrack; print(aptrack.__file__)")
    assert where.stdout.strip().startswith(str(installed_wheel))  # not the checkout
    proc = run_installed(installed_wheel, tmp_path, "-m", "aptrack", "models", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    default = rows["aptrack-pose-mnv2-256-ft4"]
    assert default["weights"] == "project"  # packaged inside the wheel
    assert default["params_m"] == pytest.approx(5.37, abs=0.01) and default["gflops"] == pytest.approx(0.90, abs=0.01)


def test_installed_wheel_runs_ten_frames_from_any_folder(installed_wheel, tmp_path):
    if not (DOG_CLIP.is_file() and YOLO_INT8.is_file()):
        pytest.skip(f"shared assets not found at {SHARED_ASSETS}")
    proc = run_installed(installed_wheel, tmp_path, "-m", "aptrack", "run", str(DOG_CLIP), "--end", "10",
                         "--no-video", "-o", "out", "-q", APTRACK_MIRROR=str(SHARED_ASSETS))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out" / "dog_clip.json").read_text())
    assert result["summary"]["frames"] == 10 and result["summary"]["tracks"] == 1
    assert result["info"]["models"]["pose"]["file"].startswith(str(installed_wheel))
    assert len(result["annotations"][0]["keypoints"]) == 3 * 17

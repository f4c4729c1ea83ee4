import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

# Property tests (tests/test_properties.py, tests/test_fuzz_loaders.py): a short, seeded run in
# make test; benchmarks/properties.sh runs the long one.
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PROJECT = Path(__file__).resolve().parent.parent
SHARED_ASSETS = Path(os.environ.get("APTRACK_MIRROR") or PROJECT.parent / "shared" / "assets")
DOG_CLIP = SHARED_ASSETS / "videos" / "dog_clip.avi"
YOLO_INT8 = SHARED_ASSETS / "weights" / "yolov8n_int8.onnx"


@pytest.fixture
def dog_clip() -> Path:
    if not DOG_CLIP.is_file():
        pytest.skip(f"shared assets not found at {SHARED_ASSETS} (needs ../shared/assets/videos/dog_clip.avi)")
    return DOG_CLIP


@pytest.fixture
def mirror(monkeypatch, tmp_path) -> Path:
    """The shared offline mirror, with an empty private cache so tests never touch ~/.cache."""
    if not YOLO_INT8.is_file():
        pytest.skip(f"shared assets not found at {SHARED_ASSETS} (needs weights/yolov8n_int8.onnx)")
    monkeypatch.setenv("APTRACK_MIRROR", str(SHARED_ASSETS))
    monkeypatch.setenv("APTRACK_CACHE", str(tmp_path / "cache"))
    return SHARED_ASSETS


def write_video(path: Path, frames: int, size=(64, 48), fourcc="MJPG", fps=10.0) -> Path:
    """A small synthetic video: a white square moving right on black."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[10:20, 2 + i:12 + i] = 255
        writer.write(img)
    writer.release()
    return path


@pytest.fixture
def random_pose_checkpoint(tmp_path) -> Path:
    """An untrained SimpleBaseline checkpoint (for plumbing tests only)."""
    import torch

    from aptrack.core.layout import load_layout
    from aptrack.models import Preset, build_checkpoint, create_model

    torch.manual_seed(0)
    preset = Preset(name="pose-random", family="simplebaseline",
                    architecture={"backbone": "mobilenet_v2", "deconv_channels": [32, 32, 32], "deconv_kernel": 4},
                    layout=load_layout("ap10k"), input_size=(128, 128),
                    codec={"type": "aptrack-heatmap", "heatmap_size": [32, 32], "sigma": 1.0, "blur_kernel": 11})
    path = tmp_path / "pose_random.pt"
    torch.save(build_checkpoint(create_model(preset), preset, {"note": "random init, tests only"}), path)
    return path


ANIMALPOSE = SHARED_ASSETS / "animalpose"
AP10K_SAMPLE = SHARED_ASSETS / "ap10k_sample"


@pytest.fixture
def animalpose() -> Path:
    if not (ANIMALPOSE / "keypoints.json").is_file():
        pytest.skip(f"shared assets not found at {SHARED_ASSETS} (needs animalpose/keypoints.json)")
    return ANIMALPOSE


@pytest.fixture
def ap10k_sample() -> Path:
    if not (AP10K_SAMPLE / "test_ap10k.json").is_file():
        pytest.skip(f"shared assets not found at {SHARED_ASSETS} (needs ap10k_sample/test_ap10k.json)")
    return AP10K_SAMPLE


def animalpose_subset(dest: Path, n_images: int, first: int = 0) -> Path:
    """A small Animal-Pose-dialect json with the annotations of ``n_images`` real images."""
    import json
    data = json.loads((ANIMALPOSE / "keypoints.json").read_text())
    ids = list(data["images"])[first:first + n_images]
    sub = {"categories": data["categories"], "info": data.get("info", {}),
           "images": {i: data["images"][i] for i in ids},
           "annotations": [a for a in data["annotations"] if str(a["image_id"]) in ids]}
    dest.write_text(json.dumps(sub))
    return dest


def randomized(model, seed: int = 0):
    """``model`` with every parameter and batch-norm statistic random (init zeros some),
    so a tensor loaded into the wrong place changes the output."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return model.eval()

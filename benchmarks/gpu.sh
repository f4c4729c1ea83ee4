#!/usr/bin/env bash
# End-to-end frames/s on a GPU, one command: bash benchmarks/gpu.sh [FRAMES]
#
# Builds a synthetic 5-animal video (five copies of the bundled dog clip tiled on a
# 1280x720 canvas; the detector sees it at 640 px), then runs `aptrack run --device cuda`
# on it with the default pipeline (pose in torch with fp16 autocast, flip test in one batch),
# then with --batch-frames 8, and, when onnxruntime-gpu is installed, with --backend onnxruntime (ONNX Runtime's CUDA
# provider). Prints each run's summary (frames/s, ms per stage). Needs a CUDA GPU and the
# mirror (APTRACK_MIRROR, or ../shared/assets beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES="${1:-600}"
PY=".venv/bin/python"; [ -x "$PY" ] || PY=python3
export APTRACK_MIRROR="${APTRACK_MIRROR:-$(realpath ../shared/assets)}" YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False
OUT="$(mktemp -d)"; trap 'rm -rf "$OUT"' EXIT
"$PY" - "$OUT/five.avi" "$FRAMES" <<'PY'
import sys, os, cv2, numpy as np
from aptrack.io.video import AtomicVideoWriter, VideoReader
out, frames = sys.argv[1], int(sys.argv[2])
with VideoReader(os.path.join(os.environ["APTRACK_MIRROR"], "videos", "dog_clip.avi")) as r:
    clip = [f for _, f in r]
cells = [(0, 0), (426, 0), (852, 0), (213, 360), (639, 360)]
writer = AtomicVideoWriter(out, 30.0, (1280, 720), fourcc="MJPG")
for i in range(frames):
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    for j, (x, y) in enumerate(cells):  # each tile a little out of step with the others
        t = (i + 37 * j) % (2 * len(clip))
        f = clip[t if t < len(clip) else 2 * len(clip) - 1 - t]
        canvas[y:y + 360, x:x + 426] = cv2.resize(f, (426, 360))
    writer.write(canvas)
writer.commit(); writer.close()
PY
"$PY" -m aptrack run "$OUT/five.avi" -o "$OUT/torch" --device cuda --no-video
# eight frames' crops (40 animals) through the pose network together; the detector batches too
# when it is a PyTorch model (the bundled int8 ONNX file has its batch fixed at 1)
"$PY" -m aptrack run "$OUT/five.avi" -o "$OUT/batched" --device cuda --no-video --batch-frames 8
if "$PY" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'; then
    "$PY" -m aptrack run "$OUT/five.avi" -o "$OUT/ort" --device cuda --backend onnxruntime --no-video
else
    echo "onnxruntime-gpu not installed: the ONNX Runtime CUDA run is skipped"
fi

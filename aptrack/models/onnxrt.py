"""Pose networks as ONNX files, run by ONNX Runtime (``--backend onnxruntime``, ``aptrack export``).

An exported file is self-describing, as aptrack's checkpoints are: its
metadata holds the model's whole preset (``aptrack_preset``, the JSON of
:meth:`Preset.to_dict`), so ``aptrack run --pose model.onnx`` needs nothing
else. Its one input, ``crops``, is a (B, 3, H, W) batch of normalised crops
(B dynamic); its outputs are ``heatmaps`` (B, K, h, w), or ``simcc_x`` and
``simcc_y`` for a SimCC model: exactly what the torch network returns, so
the estimator's flip test and decoding are shared by both backends.

On this project's 2-core CPU, ONNX Runtime runs the default model about twice
as fast as torch (21 vs 43 ms for one 256 x 256 crop, 153 vs 456 ms for 8).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aptrack.core.errors import ConfigError, OutputError, WeightsError, write_atomic
from aptrack.models.presets import Preset

log = logging.getLogger(__name__)

PRESET_KEY = "aptrack_preset"
"""ONNX metadata key holding the model's preset as JSON."""

FORMAT_KEY = "aptrack_format"
FORMAT = "aptrack-pose-onnx/1"
"""ONNX metadata: the file kind and its version."""

INPUT_NAME = "crops"
OPSET = 17
MAX_BYTES = 2_000_000_000
"""Largest network (fp32 weights) written as one ONNX file: protobuf's 2 GB limit (ViTPose-H is above it)."""
PRECISIONS = ("fp32", "fp16", "int8")
INT8_OPS = ("MatMul", "Gemm")
"""What ``int8`` quantises: the matrix products of the transformer families (ViTPose, HRFormer's
attention). Dynamic quantisation of convolutions ruins the convolutional models: the default
model's held-out AP went from 0.600 to 0.000 (and it ran slower); they stay fp32."""


def output_names(model: nn.Module, preset: Preset) -> list[str]:
    """``["heatmaps"]`` or, for a model returning a tuple (SimCC), ``["simcc_x", "simcc_y"]``."""
    w, h = preset.input_size
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, h, w))
    return ["simcc_x", "simcc_y"] if isinstance(out, tuple) else ["heatmaps"]


def fits_onnx(model: nn.Module) -> bool:
    """Whether the fp32 weights of ``model`` fit in one ONNX file (:data:`MAX_BYTES`)."""
    return sum(4 * t.numel() for t in model.state_dict().values()) < MAX_BYTES


def export_onnx(model: nn.Module, preset: Preset, path: str | Path, precision: str = "fp32",
                meta: dict | None = None) -> Path:
    """Write ``model`` as a self-describing ONNX file (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        The pose network, fp32, eval mode, on the CPU.
    preset : Preset
        Stored in the file's metadata.
    path : str or Path
        Written through a temporary name and a rename.
    precision : {"fp32", "fp16", "int8"}
        ``fp16``: weights and activations in half precision (for GPUs; the
        input and outputs stay float32). ``int8``: ONNX Runtime's dynamic
        quantisation of the matrix products (:data:`INT8_OPS`; uint8 weights,
        activations quantised on the fly); convolutions stay fp32.
    meta : dict, optional
        More metadata (strings), e.g. the source checkpoint's sha256.

    Returns
    -------
    Path
    """
    import onnx

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    path = Path(path)
    model = model.float().eval().cpu()
    if not fits_onnx(model):
        raise WeightsError(f"{preset.name} has over 2 GB of weights, more than one ONNX file holds: "
                           f"run it with --backend torch")
    names = output_names(model, preset)
    w, h = preset.input_size
    axes = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(1, 3, h, w), str(tmp), input_names=[INPUT_NAME],
                              output_names=names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        graph = onnx.load(str(tmp))
        if precision == "fp16":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            graph = convert_float_to_float16(graph, keep_io_types=True)
        described = {PRESET_KEY: json.dumps(preset.to_dict()), FORMAT_KEY: FORMAT, "aptrack_precision": precision,
                     **{str(k): str(v) for k, v in (meta or {}).items()}}
        del graph.metadata_props[:]
        for key, value in described.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = tmp.with_name(tmp.name + ".int8")
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process, on the root logger
            try:
                quantize_dynamic(str(tmp), str(quantized), weight_type=QuantType.QUInt8,
                                 op_types_to_quantize=list(INT8_OPS))
                os.replace(quantized, tmp)
            finally:
                root.setLevel(level)
                quantized.unlink(missing_ok=True)

    write_atomic(path, write)
    return path


def read_onnx_preset(path: str | Path) -> Preset:
    """The preset an aptrack ONNX file describes.

    Raises
    ------
    WeightsError
        If the file is not ONNX, or not a pose model exported by aptrack.
    """
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError and others
        raise WeightsError(f"pose model {path} is not a readable ONNX file ({type(exc).__name__})") from None
    props = {p.key: p.value for p in graph.metadata_props}
    if props.get(FORMAT_KEY) != FORMAT or PRESET_KEY not in props:
        raise WeightsError(f"pose model {path} is an ONNX file without aptrack's metadata: "
                           f"export it with aptrack export")
    try:
        return Preset.from_dict(json.loads(props[PRESET_KEY]), f"pose model {path}")
    except (json.JSONDecodeError, ConfigError) as exc:
        raise WeightsError(f"pose model {path} carries a malformed preset ({exc})") from None


class OnnxPoseNetwork:
    """An exported pose network run by ONNX Runtime, called like the torch one.

    Parameters
    ----------
    path : str or Path
        An ONNX file written by :func:`export_onnx`.
    device : {"cpu", "cuda"}
        ``cuda`` uses ONNX Runtime's CUDA provider (onnxruntime-gpu), else the CPU.
    threads : int, optional
        Intra-op threads (default: torch's thread count, so both backends
        share the cores the same way).

    Calling it with a (B, 3, H, W) float tensor returns what the torch
    network would: a (B, K, h, w) tensor, or a tuple of SimCC tensors.
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        self.path, self.device = Path(path), device
        self.preset = read_onnx_preset(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # ONNX Runtime's worker threads spin after each run by default, holding the cores the
        # detector needs next; without spinning they sleep (the dog clip on 2 cores, back to back:
        # 9.3-9.6 -> 9.7 frames/s). The detector's own session, built by Ultralytics, keeps
        # spinning: rebuilt without it, the run got slower (8.7 frames/s)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise WeightsError("--backend onnxruntime --device cuda needs onnxruntime-gpu "
                                   "(CUDAExecutionProvider is not available)")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise WeightsError(f"ONNX Runtime cannot load {self.path}: {str(exc).strip().splitlines()[0]}") from None
        inputs = self.session.get_inputs()
        w, h = self.preset.input_size
        shape = inputs[0].shape if len(inputs) == 1 else None
        if shape is None or inputs[0].name != INPUT_NAME or len(shape) != 4 or list(shape[1:]) != [3, h, w]:
            got = [(i.name, i.shape) for i in inputs]
            raise WeightsError(f"pose model {self.path} takes {got}, not one input '{INPUT_NAME}' "
                               f"of shape [batch, 3, {h}, {w}] as its preset says")
        self.output_names = [o.name for o in self.session.get_outputs()]
        if self.output_names not in (["heatmaps"], ["simcc_x", "simcc_y"]):
            raise WeightsError(f"pose model {self.path} gives outputs {self.output_names}, "
                               f"not heatmaps or simcc_x, simcc_y")

    def __call__(self, batch: torch.Tensor):
        x = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        outs = [torch.from_numpy(o) for o in self.session.run(self.output_names, {INPUT_NAME: x})]
        return tuple(outs) if len(outs) > 1 else outs[0]

    def eval(self) -> "OnnxPoseNetwork":
        return self

    def with_threads(self, threads: int | None) -> "OnnxPoseNetwork":
        """The same network in a session of its own with ``threads`` intra-op threads."""
        return OnnxPoseNetwork(self.path, self.device, threads)


def cached_export(model: nn.Module, preset: Preset, sha256: str, cache: Path) -> Path:
    """The ONNX file of a checkpoint (by its ``sha256``) in ``cache``, exported on first use."""
    path = Path(cache) / f"{preset.name}-{sha256[:16]}.onnx"
    if path.is_file():
        try:
            if read_onnx_preset(path).to_dict() == preset.to_dict():
                return path
        except WeightsError:
            pass
        log.info("re-exporting %s: the cached file does not describe this model", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write the ONNX cache {path.parent}: {exc.strerror or exc}") from None
    log.info("exporting %s to ONNX once: %s", preset.name, path)
    return export_onnx(model, preset, path, meta={"source_sha256": sha256})

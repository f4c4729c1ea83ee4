"""``aptrack export``: a pose model as a self-describing ONNX file for ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

from aptrack.cli.common import add_pose_config_flag, console_flags


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a pose model as ONNX (its preset in the metadata)",
                       description="Export a pose model (zoo name, registry name or checkpoint file) to an "
                                   "ONNX file that aptrack run --pose FILE.onnx runs through ONNX Runtime "
                                   "with nothing else: the model's preset travels in the file's metadata.")
    p.add_argument("--pose", required=True, metavar="NAME|FILE", help="the pose model to export")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true",
                           help="half-precision weights and activations (for GPUs; float32 input and outputs)")
    precision.add_argument("--int8", action="store_true",
                           help="ONNX Runtime's dynamic int8 quantisation of the matrix products (the "
                                "transformer families; convolutions stay fp32): check its AP with aptrack eval")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="output file (default: MODEL.onnx, MODEL-fp16.onnx or MODEL-int8.onnx here)")
    add_pose_config_flag(p)
    console_flags(p, quiet_help="print nothing but errors")
    p.set_defaults(handler=main)


def main(args) -> int:
    from aptrack.core import hub
    from aptrack.core.errors import OutputError, WeightsError
    from aptrack.models import get_preset, load_checkpoint, preset_name_for
    from aptrack.models.onnxrt import export_onnx

    precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
    weights = hub.resolve(args.pose)
    if weights.path.suffix.lower() == ".onnx":
        raise WeightsError(f"{weights.path} is an ONNX file already: export a torch checkpoint or a model name")
    named = preset_name_for(args.pose, weights.sha256, args.pose_config)
    model, preset, _ = load_checkpoint(weights.path, "cpu", name=weights.name,
                                       preset=get_preset(named) if named else None)
    suffix = "" if precision == "fp32" else f"-{precision}"
    out = Path(args.output) if args.output else Path(f"{preset.name}{suffix}.onnx")
    if out.exists() and out.is_dir():
        raise OutputError(f"-o {out} is a folder: give a file name")
    if not out.parent.is_dir():
        raise OutputError(f"cannot write {out}: folder {out.parent} does not exist")
    export_onnx(model, preset, out, precision, meta={"source_sha256": weights.sha256, "source": weights.name})
    if not args.quiet:
        print(f"{preset.name} ({precision}) -> {out}")
    return 0

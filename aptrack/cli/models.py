"""``aptrack models``: the model zoo, one line per model preset."""

from __future__ import annotations

import json

from aptrack.cli.common import aligned


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the pose models aptrack can run by name",
                       description="List the model presets: name, family, input size, parameters, "
                                   "GFLOPs (multiply-adds per crop, as mmpose's tables count them), "
                                   "the AP their authors report, and whether the weights are here.")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(handler=main)


def main(args) -> int:
    from aptrack.models import model_card_rows

    rows = model_card_rows()
    if args.format == "json":
        print(json.dumps(rows))
        return 0
    header = ("name", "family", "input", "params", "GFLOPs", "reported AP", "weights")
    table = [header] + [(r["name"], r["family"], f"{r['input_size'][0]}x{r['input_size'][1]}",
                         f"{r['params_m']:.2f} M", f"{r['gflops']:.2f}",
                         "n/a" if r["reported_ap"] is None else f"{r['reported_ap']:.3f}",
                         r["weights"]) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    print("\n".join("  ".join(f"{str(c):<{w}}" for c, w in zip(row, widths)).rstrip() for row in table))
    notes = [(f"  {r['name']}", f"AP {r['reported_ap']:.3f} on {r['reported_dataset']}") for r in rows
             if r.get("reported_dataset") and r["reported_ap"] is not None]
    if notes:
        print(aligned(notes))
    return 0

"""Benchmark reports: ``report.json``, ``report.md`` and PNG plots, each written
to a temporary name and renamed into place."""

from __future__ import annotations

import math
from pathlib import Path

from aptrack.core.errors import write_atomic, write_json_atomic
from aptrack.eval.bootstrap import FIGURES


def json_safe(value):
    """JSON-safe copy: NaN and infinities become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return json_safe(value.item())
    return value


def headline(report: dict) -> dict:
    """The report's main figures as one flat dict (``--format json``)."""
    kp, tr, sp = report["keypoints"], report["tracking"]["overall"], report["speed"]
    out = {"AP": kp["AP"], "AP50": kp["AP50"], "AP75": kp["AP75"], "AR": kp["AR"],
           "PCK@0.05": kp["PCK@0.05"], "EPE": kp["EPE"],
           "MOTA": tr.get("MOTA"), "IDF1": tr.get("IDF1"), "id_switches": tr.get("id_switches"),
           "HOTA": tr.get("HOTA"), "DetA": tr.get("DetA"), "AssA": tr.get("AssA"),
           "MOTP": tr.get("MOTP"), "keypoint_MOTA": tr.get("keypoint_MOTA"), "fps": sp["fps"],
           "boxes": report["source"], "split": report.get("split"), "clips": report["clips"],
           "frames": report["frames"]}
    if report.get("intervals"):
        out["intervals"] = {k: v for k, v in report["intervals"].items() if k != "samples"}
    return json_safe(out)


def interval_line(intervals: dict) -> str:
    """One line for :func:`aptrack.eval.bootstrap.clip_bootstrap`'s intervals."""
    parts = ", ".join(f"{name} {intervals[name][0]:.3f}-{intervals[name][1]:.3f}" for name in FIGURES)
    return f"{100 * intervals['level']:.0f}% intervals over {intervals['draws']} draws of the clips: {parts}"


def markdown(report: dict) -> str:
    h = headline(report)

    def fmt(v, digits=3):
        return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    lines = [f"# aptrack bench: {report.get('data', '')}", "",
             f"Split **{report.get('split')}**, boxes **{report['source']}**, {report['clips']} clips, "
             f"{report['frames']} frames.", "",
             "| metric | value |", "| --- | --- |"]
    for key in ("AP", "AP50", "AP75", "AR", "PCK@0.05", "EPE", "MOTA", "IDF1", "id_switches", "HOTA",
                "DetA", "AssA", "MOTP", "keypoint_MOTA", "fps"):
        lines.append(f"| {key} | {fmt(h[key], 2 if key in ('EPE', 'fps') else 3)} |")
    if report.get("intervals"):
        lines += ["", interval_line(report["intervals"]) + "."]
    lines += ["", "## AP per species", "", "| species | AP |", "| --- | --- |"]
    for name, ap in report["keypoints"]["per_category"].items():
        lines.append(f"| {name} | {fmt(json_safe(ap))} |")
    lines += ["", "## Speed (ms per frame)", "", "| stage | ms |", "| --- | --- |"]
    for stage, ms in report["speed"]["ms_per_frame"].items():
        lines.append(f"| {stage} | {ms:.1f} |")
    if report.get("trackers"):
        lines += ["", "## Trackers on the same detections", "",
                  "| tracker | MOTA | IDF1 | HOTA | ID switches | false positives | misses | ms per frame |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, row in report["trackers"].items():
            lines.append(f"| {name} | {fmt(json_safe(row['MOTA']))} | {fmt(json_safe(row['IDF1']))} | "
                         f"{fmt(json_safe(row['HOTA']))} | {row['id_switches']} | {row['false_positives']} | "
                         f"{row['misses']} | {row['ms_per_frame']:.2f} |")
        lines.append("")
        lines.append("ms per frame: median of the timed rounds, in which the trackers take turns.")
    return "\n".join(lines) + "\n"


def plots(report: dict, out_dir: Path) -> list[Path]:
    """AP per species and MOTA / IDF1 per clip as PNG files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    species = report["keypoints"]["per_category"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(species)
    ax.bar(names, [max(0.0, v if v is not None and math.isfinite(v) else 0.0) for v in species.values()],
           color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_ylabel("keypoint AP")
    ax.set_title(f"AP per species ({report['source']} boxes)")
    fig.tight_layout()
    path = out_dir / "ap_per_species.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    written.append(path)

    per_clip = report["tracking"]["per_clip"]
    fig, ax = plt.subplots(figsize=(max(6, 0.15 * len(per_clip)), 3.5))
    xs = range(len(per_clip))
    mota = [math.nan if v["MOTA"] is None else v["MOTA"] for v in per_clip.values()]
    idf1 = [math.nan if v["IDF1"] is None else v["IDF1"] for v in per_clip.values()]
    ax.plot(xs, mota, "o-", label="MOTA", ms=3)
    ax.plot(xs, idf1, "s-", label="IDF1", ms=3)
    ax.set_xlabel("clip")
    ax.set_ylim(min([0.0] + [m for m in mota if math.isfinite(m)]), 1.05)
    ax.legend()
    ax.set_title("tracking per clip")
    fig.tight_layout()
    path = out_dir / "tracking_per_clip.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    written.append(path)
    return written


def write_report(report: dict, out_dir: str | Path) -> dict[str, str]:
    """Write report.json, report.md and the plots; returns their paths."""
    out = Path(out_dir)
    clean = json_safe(report)
    write_json_atomic(out / "report.json", clean, indent=2)
    write_atomic(out / "report.md", lambda tmp: tmp.write_text(markdown(clean)))
    pngs = plots(clean, out)
    return {"json": str(out / "report.json"), "md": str(out / "report.md"),
            "plots": [str(p) for p in pngs]}

"""The gap between two ``aptrack bench --bootstrap N`` runs on the same clips, with its interval.

    python benchmarks/paired_gap.py A/report.json B/report.json

Both runs must have scored the same clips with the same ``--bootstrap N`` (the draws are seeded, so
the same clips are drawn for both): each draw's figure of A minus B's is one draw of the gap, and
the interval of those is much narrower than either run's own interval, since a hard clip is hard
for both. E.g. ``--boxes gt`` against ``--boxes gt-first-frame`` (issue 17's AP gap).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", help="report.json of the first run")
    p.add_argument("b", help="report.json of the second run")
    args = p.parse_args(argv)

    from aptrack.eval.bootstrap import FIGURES, paired_interval

    reports = []
    for path in (args.a, args.b):
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        if not report.get("intervals"):
            print(f"{path}: no bootstrap draws (run aptrack bench with --bootstrap N)", file=sys.stderr)
            return 2
        reports.append(report)
    a, b = reports
    if (a["data"], a["split"], a["clips"], a["intervals"]["seed"]) != \
            (b["data"], b["split"], b["clips"], b["intervals"]["seed"]):
        print("the two reports scored different clips or drew them with different seeds", file=sys.stderr)
        return 2
    level = a["intervals"]["level"]
    print(f"{a['source']} minus {b['source']} on {a['data']} ({a['clips']} clips), "
          f"{100 * level:.0f}% over {a['intervals']['draws']} paired draws:")
    for name in FIGURES:
        # a draw's NaN was written as null; paired_interval's float64 arrays read null back as NaN
        low, high = paired_interval(a["intervals"]["samples"][name], b["intervals"]["samples"][name], level)
        gap = a["keypoints"]["AP"] - b["keypoints"]["AP"] if name == "AP" else \
            a["tracking"]["overall"][name] - b["tracking"]["overall"][name]
        print(f"  {name:<5} {gap:+.3f}  ({low:+.3f} to {high:+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

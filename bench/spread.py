"""The spread of several bench/run.py results: one row per model step, the range of each figure over the runs.

    python bench/spread.py bench/results/models-2026-12-04b/run*.json

A ratio measured on a shared machine moves by 10-50 % between runs, so a README figure is the range
over several runs, never one run's value. Per model case it prints, as a markdown table, the range
over the runs of each implementation's speed against PyTorch (paired per round, as bench/run.py
measures it), PyTorch's time per step, the seed-style share of the GEMM peak of ``--impl`` (numba)
and the ceiling (the most any implementation could beat PyTorch by there: PyTorch's share of the
peak, inverted; see bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _range(values, spec: str, suffix: str = "", end: str = "") -> str:
    """'lo-hi' of the values (one value if they print alike): ``suffix`` after each, ``end`` after both."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    lo, hi = (format(v, spec) + suffix for v in (min(values), max(values)))
    return (lo if lo == hi else f"{lo}-{hi}") + end


def spread_table(results: list[dict], impl: str = "numba") -> str:
    """The markdown table of the model cases over ``results`` (bench/run.py JSON, one per run)."""
    cases = list(dict.fromkeys(r["case"] for res in results for r in res["rows"] if r["kind"] == "model"))
    impls = list(
        dict.fromkeys(
            r["impl"] for res in results for r in res["rows"] if r["kind"] == "model" and r["impl"] != "pytorch"
        )
    )
    head = ["model"] + [f"{i} vs PyTorch" for i in impls] + ["PyTorch ms/step", f"{impl} % of GEMM peak", "ceiling"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "--:|" * (len(head) - 1)]
    for case in cases:

        def rows(name, case=case):
            return [r for res in results for r in res["rows"] if r["case"] == case and r["impl"] == name]

        anchor = rows("pytorch")
        cells = [case]
        cells += [_range([r.get("speed_vs_pytorch") for r in rows(i)], ".2f", "x") for i in impls]
        ms = [r["median_s"] * 1e3 for r in anchor]
        cells.append(_range(ms, ".0f" if ms and min(ms) > 50 else ".1f"))
        cells.append(_range([r.get("pct_of_peak") for r in rows(impl)], ".0f", end=" %"))
        cells.append(_range([100 / r["pct_of_peak"] for r in anchor if r.get("pct_of_peak")], ".2f", "x"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="bench/run.py JSON files, one per run")
    p.add_argument("--impl", default="numba", help="whose share of the GEMM peak to show (default: numba)")
    args = p.parse_args(argv)
    missing = [str(f) for f in args.results if not f.is_file()]
    if missing:
        print(f"error: no such result file: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = []
    for f in args.results:
        try:
            results.append(json.loads(f.read_text()))
            results[-1]["rows"]
        except (ValueError, KeyError, TypeError):
            print(f"error: {f} is not a bench/run.py result (the .json it writes, not the .md)", file=sys.stderr)
            return 2
    impls = {r["impl"] for res in results for r in res["rows"] if r["kind"] == "model"}
    if args.impl not in impls:
        print(f"error: --impl {args.impl}: these results have {', '.join(sorted(impls))}", file=sys.stderr)
        return 2
    loads = [res["machine"].get("load_average_start", [None])[0] for res in results]
    loads = ", ".join(f"{x:.1f}" for x in loads if x is not None)
    print(f"# {len(results)} runs; load average at their starts: {loads}")
    print(spread_table(results, args.impl))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A sweep summary as a plain-text report (``townlet-report SWEEP_DIR``) and as JSON-ready data.

The terminal wants aligned columns and absolute paths to open next, not a markdown table; and a
report never writes into the sweep dir, so it lists only the plots an earlier ``write_summary`` drew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from townlet.sweeps.jobs import STATUSES, build_summary
from townlet.sweeps.plots import CURVES_PNG, OBJECTIVE_PNG
from townlet.sweeps.render import SUMMARY_STEM, fmt


def sweep_report(sweep_dir: Path) -> dict[str, Any]:
    """The sweep summary (built, not written: a report never touches the directory) and its plots."""
    data = asdict(build_summary(sweep_dir))
    names = [OBJECTIVE_PNG, CURVES_PNG, f"{SUMMARY_STEM}.md"]
    data["plots"] = [str(sweep_dir.resolve() / n) for n in names[:2] if (sweep_dir / n).is_file()]
    data["summary_file"] = str(sweep_dir.resolve() / names[2]) if (sweep_dir / names[2]).is_file() else None
    return {"kind": "sweep", **data}


def render_text(report: dict[str, Any]) -> str:
    """Header, one aligned row per job (best marked ``*``), errors, seed statistics, plot paths."""
    counts = report["counts"]
    objective = f"{report['objective']} ({report['objective_mode']})" if report["objective"] else "(none)"
    expected = f" of {report['expected_jobs']} expected" if report["expected_jobs"] is not None else ""
    lines = [
        f"townlet-report: sweep {report['sweep_dir']}",
        f"  objective   {objective}",
        f"  jobs        {counts['total']}{expected}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES),
    ]
    axes = report["axes"]
    rows = report["rows"]
    best = next((r for r in rows if r["best"]), None)
    if best is not None:
        swept = " ".join(f"{a}={best['params'][a]}" for a in axes if a in best["params"])
        lines.append(f"  best        job {best['num']} ({swept}) -> {fmt(best['objective'], '-')}")
    head = ["#", "status", *axes, "objective", "seconds", "job dir"]
    table = [
        [
            "" if r["num"] is None else str(r["num"]),
            r["status"] + (" *" if r["best"] else ""),
            *(r["params"].get(a, "") for a in axes),
            fmt(r["objective"], "-"),
            fmt(r["duration_sec"], "-"),
            r["job_dir"],
        ]
        for r in rows
    ]
    lines += [f"  {line}" for line in _columns([head, *table])]
    lines += [f"  job {r['num']}: {r['error']}" for r in rows if r["error"]]
    for group in report["seed_groups"]:
        params = " ".join(f"{k}={v}" for k, v in group["params"].items()) or "all jobs"
        mean, std = group["objective_mean"], group["objective_std"]
        spread = "-" if mean is None else f"{fmt(mean)} ± {fmt(std, '-')}"
        lines.append(f"  over seeds  {params}: {spread} ({group['n_ok']}/{group['n']} ok)")
    lines.append("plots:" if report["plots"] else "plots: none yet (townlet-sweep-report DIR draws them)")
    lines += [f"  {p}" for p in report["plots"]]
    if report["summary_file"]:
        lines.append(f"summary: {report['summary_file']}")
    return "\n".join(lines) + "\n"


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]

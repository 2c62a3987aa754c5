"""The owner's statement: session values summed per day or month (JSON + SVG).

    paths = write_statement(records, Path("reports"), period="month")

Each row: energy bought and sold, what it cost and earned, the wear of the sessions, the
baseline (the same energy charged at full power on arrival) with its wear, and the net
benefit (baseline - actual). The SVG shows the net benefit per period as bars and the
cumulative benefit as a line. Sessions without a value (no wear model) are skipped. The
station port rewrites `statement_day.*` and `statement_month.*` in the reports directory
after every session report (`update_statements`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from evse._report import REPORT_FORMAT, SessionRecord

__all__ = ["StatementPaths", "load_reports", "render_statement_svg", "statement",
           "update_statements", "write_statement"]

STATEMENT_FORMAT = "evse-owner-statement"
_KEYS = ("energy_bought_kwh", "energy_sold_kwh", "cost_bought", "revenue_sold", "wear_cost",
         "baseline_energy_kwh", "baseline_cost", "baseline_wear_cost")


@dataclass(frozen=True, slots=True)
class StatementPaths:
    json: Path
    svg: Path


def statement(records: Sequence[SessionRecord], *, period: str = "day",
              tz: tzinfo = UTC) -> dict[str, Any]:
    if period not in ("day", "month"):
        raise ValueError(f"period must be 'day' or 'month', got {period!r}")
    fmt = "%Y-%m-%d" if period == "day" else "%Y-%m"
    rows: dict[str, dict[str, Any]] = {}
    currency = None
    for r in sorted(records, key=lambda r: r.started_at):
        v = r.value
        if v is None:
            continue
        currency = currency or v.currency
        key = datetime.fromtimestamp(r.started_at, tz).strftime(fmt)
        row = rows.setdefault(key, {"period": key, "sessions": 0, **dict.fromkeys(_KEYS, 0.0)})
        row["sessions"] += 1
        for k in _KEYS:
            row[k] += getattr(v, k)
    out = []
    for row in rows.values():
        row["net_cost"] = row["cost_bought"] - row["revenue_sold"] + row["wear_cost"]
        row["baseline_net_cost"] = row["baseline_cost"] + row["baseline_wear_cost"]
        row["net_benefit"] = row["baseline_net_cost"] - row["net_cost"]
        out.append(row)
    total = {k: sum(r[k] for r in out) for k in (*_KEYS, "sessions", "net_cost",
                                                   "baseline_net_cost", "net_benefit")}
    return {"format": STATEMENT_FORMAT, "version": 1, "period": period,
            "currency": currency or "EUR", "rows": out, "total": total}


def render_statement_svg(data: dict[str, Any]) -> str:
    rows = data["rows"]
    c = data["currency"]
    width, left, top, plot_h = 760, 70, 60, 240
    n = max(1, len(rows))
    bar_w = (width - left - 30) / n
    values: list[float] = [float(r["net_benefit"]) for r in rows]
    cum: list[float] = []
    acc = 0.0
    for v in values:
        acc += v
        cum.append(acc)
    lo: float = min([0.0, *values, *cum])
    hi: float = max([0.0, *values, *cum])
    if hi - lo < 1e-9:
        hi = lo + 1.0

    def y(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
           f'height="{top + plot_h + 90}" font-family="DejaVu Sans, Arial, sans-serif">',
           f'<rect width="{width}" height="{top + plot_h + 90}" fill="#fff"/>',
           f'<text x="{left}" y="28" font-size="17" font-weight="bold">Owner statement per '
           f'{escape(data["period"])}: net benefit against charging on arrival ({c})</text>',
           f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - 30}" y2="{y(0):.1f}" '
           'stroke="#777" stroke-dasharray="5 3"/>',
           f'<text x="{left - 6}" y="{y(hi) + 4:.1f}" font-size="11" '
           f'text-anchor="end">{hi:.2f}</text>',
           f'<text x="{left - 6}" y="{y(lo) + 4:.1f}" font-size="11" '
           f'text-anchor="end">{lo:.2f}</text>']
    pts = []
    for i, (r, v) in enumerate(zip(rows, values, strict=True)):
        x = left + i * bar_w
        y0, y1 = sorted((y(0), y(v)))
        color = "#2ca02c" if v >= 0 else "#d62728"
        out.append(f'<rect x="{x + 4:.1f}" y="{y0:.1f}" width="{bar_w - 8:.1f}" '
                   f'height="{max(y1 - y0, 0.5):.1f}" fill="{color}"/>')
        out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 18}" font-size="11" '
                   f'text-anchor="middle">{escape(r["period"])}</text>')
        pts.append(f"{x + bar_w / 2:.1f},{y(cum[i]):.1f}")
    if pts:
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#1f77b4" '
                   'stroke-width="2"/>')
    t = data["total"]
    out.append(f'<text x="{left}" y="{top + plot_h + 44}" font-size="13">Bought '
               f'{t["energy_bought_kwh"]:.1f} kWh for {t["cost_bought"]:.2f}, sold '
               f'{t["energy_sold_kwh"]:.1f} kWh for {t["revenue_sold"]:.2f}, wear '
               f'{t["wear_cost"]:.2f}; baseline {t["baseline_cost"]:.2f} + wear '
               f'{t["baseline_wear_cost"]:.2f}</text>')
    out.append(f'<text x="{left}" y="{top + plot_h + 64}" font-size="13" font-weight="bold">'
               f'Net benefit {t["net_benefit"]:+.2f} {c} over {t["sessions"]} session(s) '
               '(bars: per period, line: cumulative)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_statement(records: Sequence[SessionRecord], directory: Path | str, *,
                    period: str = "day", tz: tzinfo = UTC) -> StatementPaths:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    data = statement(records, period=period, tz=tz)
    js, svg = d / f"statement_{period}.json", d / f"statement_{period}.svg"
    for path, text in ((js, json.dumps(data, indent=1) + "\n"),
                       (svg, render_statement_svg(data))):
        tmp = path.with_name(path.name + ".tmp")  # readers never see half a file
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return StatementPaths(js, svg)


def load_reports(directory: Path | str) -> list[SessionRecord]:
    """The session reports (JSON) in a directory; other or broken files are skipped."""
    out = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("format") == REPORT_FORMAT:
                out.append(SessionRecord.from_dict(data))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def update_statements(directory: Path | str, *, tz: tzinfo | None = None) -> list[StatementPaths]:
    """Rewrite statement_day and statement_month (JSON + SVG) from the directory's reports
    (days and months in the local time zone unless `tz` is given)."""
    records = load_reports(directory)
    zone = tz or datetime.now().astimezone().tzinfo or UTC
    return [write_statement(records, directory, period=p, tz=zone) for p in ("day", "month")]

"""Session reports: a JSON record and a hand-written SVG picture of a charging session.

    paths = write_report(record, Path("/var/lib/evse/reports"))
    paths.json, paths.svg

The SVG stacks six small charts sharing one time axis (voltage, current, power, SOC, price,
and the money spent so far beside what charging at full power on arrival would have spent),
each with its own y axis, grid and unit, a dashed zero line where values change sign
(discharge is negative, DESIGN 5), and the energy and money summary as text. Long sessions
are thinned per pixel column (minimum and maximum kept, so peaks survive) to keep the file
small. No plotting library: plain SVG 1.1 that browsers, Inkscape and ImageMagick render.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from evse.energy.optimizer import MoneySummary
from evse.energy.value import SessionValue

__all__ = ["REPORT_FORMAT", "ReportPaths", "Sample", "SessionRecord", "render_svg",
           "write_report"]

REPORT_FORMAT = "evse-session-report"
REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement; None where unknown (an AC session has no DC voltage, ...)."""

    t: float  # Unix seconds
    voltage: float | None = None  # V
    current: float | None = None  # A, negative while the EV discharges
    power: float | None = None  # W, negative while the EV discharges
    soc: float | None = None  # percent
    price: float | None = None  # currency per kWh bought
    sell_price: float | None = None  # currency per kWh sold (V2G), when known


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    station_id: str
    connector: str
    started_at: float  # Unix seconds
    ended_at: float
    samples: tuple[Sample, ...]
    energy_in_kwh: float  # delivered to the EV (metered)
    energy_out_kwh: float  # returned by the EV (metered)
    money: MoneySummary | None = None
    protocol: str | None = None  # e.g. "ISO15118-20 DC_BPT"
    control_mode: str | None = None  # "Scheduled" / "Dynamic"
    stop_reason: str | None = None
    ev_id: str | None = None  # EVCCID
    metadata: Mapping[str, Any] = field(default_factory=dict)  # JSON-able extras
    value: SessionValue | None = None  # against the baseline (charging at full power on arrival)

    def to_dict(self) -> dict[str, Any]:
        money = None
        if self.money is not None:
            m = self.money
            money = {"currency": m.currency, "energy_bought_kwh": m.energy_bought_kwh,
                     "energy_sold_kwh": m.energy_sold_kwh, "cost_bought": m.cost_bought,
                     "revenue_sold": m.revenue_sold, "degradation": m.degradation,
                     "net": m.net}
        keys = ("t", "voltage", "current", "power", "soc", "price", "sell_price")
        return {
            "format": REPORT_FORMAT, "version": REPORT_VERSION,
            "session_id": self.session_id, "station_id": self.station_id,
            "connector": self.connector, "started_at": self.started_at,
            "ended_at": self.ended_at, "protocol": self.protocol,
            "control_mode": self.control_mode, "stop_reason": self.stop_reason,
            "ev_id": self.ev_id, "energy_in_kwh": self.energy_in_kwh,
            "energy_out_kwh": self.energy_out_kwh, "money": money,
            "metadata": dict(self.metadata),
            "value": None if self.value is None else self.value.to_dict(),
            # columns, not one object per sample: a 10-hour session at 1 Hz stays readable
            "samples": {k: [_json_number(getattr(s, k)) for s in self.samples]
                        for k in keys},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionRecord:
        if data.get("format") != REPORT_FORMAT:
            raise ValueError(f"not a session report (format {data.get('format')!r})")
        if data.get("version") != REPORT_VERSION:
            raise ValueError(f"unsupported session report version {data.get('version')!r}")
        cols = data["samples"]
        n = len(cols["t"])
        samples = tuple(Sample(**{k: cols[k][i] for k in cols}) for i in range(n))
        money = None
        if data.get("money") is not None:
            m = data["money"]
            money = MoneySummary(m["currency"], m["energy_bought_kwh"], m["energy_sold_kwh"],
                                 m["cost_bought"], m["revenue_sold"], m["degradation"])
        return cls(data["session_id"], data["station_id"], data["connector"],
                   data["started_at"], data["ended_at"], samples, data["energy_in_kwh"],
                   data["energy_out_kwh"], money, data.get("protocol"),
                   data.get("control_mode"), data.get("stop_reason"), data.get("ev_id"),
                   dict(data.get("metadata") or {}),
                   SessionValue.from_dict(data["value"]) if data.get("value") else None)


def _json_number(x: float | None) -> float | None:
    """A non-finite reading (NaN from a glitching meter) is stored as null."""
    return None if x is None or not math.isfinite(x) else x


@dataclass(frozen=True, slots=True)
class ReportPaths:
    json: Path
    svg: Path | None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:64] or "x"


def write_report(record: SessionRecord, directory: Path | str, *, svg: bool = True,
                 tz: tzinfo = UTC) -> ReportPaths:
    """Write <station>_<connector>_<start UTC>_<session>.json (and .svg); return the paths.
    Files are written to a temporary name and renamed, so readers never see half a file."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromtimestamp(record.started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = "_".join(_safe(x) for x in (record.station_id, record.connector, stamp,
                                       record.session_id))
    json_path = d / f"{stem}.json"
    _write_atomic(json_path, json.dumps(record.to_dict(), indent=1, allow_nan=False) + "\n")
    svg_path = None
    if svg:
        svg_path = d / f"{stem}.svg"
        _write_atomic(svg_path, render_svg(record, tz=tz))
    return ReportPaths(json_path, svg_path)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# -- SVG ------------------------------------------------------------------------------------

WIDTH = 960
LEFT = 64  # room for the y tick labels
RIGHT = 24
PANEL_H = 118
PANEL_GAP = 26
TOP = 86
PLOT_W = WIDTH - LEFT - RIGHT
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


@dataclass(frozen=True, slots=True)
class _Series:
    key: str
    label: str
    color: str
    get: Callable[[Sample], float | None]


@dataclass(frozen=True, slots=True)
class _Panel:
    key: str
    title: str  # axis title with unit
    series: tuple[_Series, ...]
    signed: bool  # draw the zero line


def _cumulative(samples: Sequence[Sample], value: SessionValue | None
                ) -> tuple[dict[float, float], dict[float, float]]:
    """Money spent so far at each sample (bought - sold; the session's and, with a value,
    the baseline's at the same buy prices), for the cumulative money panel."""
    actual: dict[float, float] = {}
    base: dict[float, float] = {}
    spent = spent_base = 0.0
    steps = value.baseline_profile if value is not None else ()

    def base_power(t: float) -> float:
        p = 0.0
        for since, power in steps:
            if since <= t:
                p = power
        return p

    prev: Sample | None = None
    for s in samples:
        if prev is not None and prev.power is not None and prev.price is not None:
            kwh = prev.power * (s.t - prev.t) / 3.6e6
            price = prev.price if kwh >= 0 else (prev.sell_price or 0.0)
            spent += price * kwh
        if prev is not None and prev.price is not None and steps:
            mid = (prev.t + s.t) / 2
            spent_base += prev.price * base_power(mid) * (s.t - prev.t) / 3.6e6
        actual[s.t] = spent
        if steps:
            base[s.t] = spent_base
        prev = s
    return actual, base


def _panels(currency: str, cumulative: tuple[dict[float, float], dict[float, float]] = ({}, {})
            ) -> tuple[_Panel, ...]:
    def kw(s: Sample) -> float | None:
        return None if s.power is None else s.power / 1000.0

    actual, base = cumulative

    return (
        _Panel("voltage", "Voltage (V)", (_Series("voltage", "voltage", "#1f77b4",
                                                  lambda s: s.voltage),), False),
        _Panel("current", "Current (A)", (_Series("current", "current", "#d62728",
                                                  lambda s: s.current),), True),
        _Panel("power", "Power (kW)", (_Series("power", "power", "#2ca02c", kw),), True),
        _Panel("soc", "SOC (%)", (_Series("soc", "SOC", "#9467bd", lambda s: s.soc),), False),
        _Panel("price", f"Price ({currency}/kWh)",
               (_Series("price", "buy", "#ff7f0e", lambda s: s.price),
                _Series("sell_price", "sell", "#8c564b", lambda s: s.sell_price)), True),
        _Panel("money", f"Money spent so far ({currency}, energy only)",
               (_Series("money", "this session", "#17becf", lambda s: actual.get(s.t)),
                _Series("baseline_money", "full power on arrival", "#7f7f7f",
                        lambda s: base.get(s.t))), True),
    )


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag  # pragma: no cover


def _y_ticks(lo: float, hi: float, signed: bool) -> tuple[float, float, list[float]]:
    if signed:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-9:
        pad = max(abs(hi) * 0.1, 1.0)
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, 4)
    lo_t, hi_t = math.floor(lo / step) * step, math.ceil(hi / step) * step
    ticks = []
    k = 0
    while lo_t + k * step <= hi_t + step * 1e-9:
        ticks.append(round(lo_t + k * step, 10))
        k += 1
    return lo_t, hi_t, ticks


def _fmt_num(x: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step < 1 and round(step * 10 ** decimals) % 1:
        decimals += 1
    text = f"{x:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


_TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _time_ticks(t0: float, t1: float) -> list[float]:
    span = max(t1 - t0, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= 10), 86400 * math.ceil(span / 864000))
    first = math.ceil(t0 / step) * step
    return [first + k * step for k in range(int((t1 - first) // step) + 1)]


def _thin(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """At most ~2 points per pixel column: each column keeps its min and max, in time order."""
    if len(points) <= 2 * columns:
        return points
    t0, t1 = points[0][0], points[-1][0]
    width = (t1 - t0) / columns or 1.0
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    current = None
    for p in points:
        col = min(int((p[0] - t0) / width), columns - 1)
        if col != current and bucket:
            lo, hi = min(bucket, key=lambda q: q[1]), max(bucket, key=lambda q: q[1])
            out.extend(sorted({lo, hi}))
            bucket = []
        current = col
        bucket.append(p)
    if bucket:
        lo, hi = min(bucket, key=lambda q: q[1]), max(bucket, key=lambda q: q[1])
        out.extend(sorted({lo, hi}))
    return out


def _runs(samples: Sequence[Sample], get: Callable[[Sample], float | None]
          ) -> list[list[tuple[float, float]]]:
    """Consecutive known values (a None or non-finite value breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for s in samples:
        v = get(s)
        if v is None or not math.isfinite(v):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((s.t, float(v)))
    return [r for r in runs if r]


def _text(x: float, y: float, text: str, *, size: int = 12, anchor: str = "start",
          weight: str = "normal", fill: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(text)}</text>')


def _money_lines(r: SessionRecord) -> list[str]:
    lines = [f"Energy to EV {r.energy_in_kwh:.2f} kWh    from EV {r.energy_out_kwh:.2f} kWh"]
    m = r.money
    if m is not None:
        c = m.currency
        lines.append(f"Bought {m.cost_bought:.2f} {c}    sold {m.revenue_sold:.2f} {c}    "
                     f"degradation {m.degradation:.2f} {c}    net {m.net:.2f} {c}")
    v = r.value
    if v is not None:
        c = v.currency
        lines.append(f"Baseline (full power on arrival): {v.baseline_energy_kwh:.2f} kWh, "
                     f"energy {v.baseline_cost:.2f} {c}, wear {v.baseline_wear_cost:.2f} {c}"
                     f"    this session: wear {v.wear_cost:.2f} {c}")
        lines.append(f"Net benefit against the baseline: {v.net_benefit:+.2f} {c}")
    return lines


# TODO(coordinator): split below the ruff complexity limit after merging (issue 12).
def render_svg(record: SessionRecord, *, tz: tzinfo = UTC) -> str:
    """The session as an SVG document (a string)."""
    currency = record.money.currency if record.money else "EUR"
    samples = sorted(record.samples, key=lambda s: s.t)
    panels = _panels(currency, _cumulative(samples, record.value))
    t0 = min([record.started_at, *(s.t for s in samples[:1])])
    t1 = max([record.ended_at, *(s.t for s in samples[-1:])])
    if t1 <= t0:
        t1 = t0 + 60.0
    money = _money_lines(record)
    bottom_h = 40 + 18 * len(money)
    height = TOP + len(panels) * (PANEL_H + PANEL_GAP) + bottom_h

    def x_of(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * PLOT_W

    tzname = datetime.fromtimestamp(t0, tz).tzname() or "local"
    out = _svg_header(record, t0, t1, tz, tzname, height)
    xticks = _time_ticks(t0, t1)
    for i, panel in enumerate(panels):
        out.extend(_panel_svg(panel, samples, TOP + i * (PANEL_H + PANEL_GAP), xticks, x_of))
    axis_y = TOP + len(panels) * (PANEL_H + PANEL_GAP) - PANEL_GAP
    out.extend(_time_axis_svg(xticks, x_of, axis_y, tz, tzname))
    y = axis_y + 56
    out.append('<g id="summary">')
    for line in money:
        out.append(_text(LEFT, y, line, size=13, weight="bold"))
        y += 18
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_header(record: SessionRecord, t0: float, t1: float, tz: tzinfo, tzname: str,
                height: float) -> list[str]:
    """The document's opening, its background, and the title and subtitle lines."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">',
        f"<title>{escape(f'Charging session {record.session_id}')}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    start = datetime.fromtimestamp(t0, tz)
    end = datetime.fromtimestamp(t1, tz)
    title = f"Session {record.session_id} - station {record.station_id}, connector " \
            f"{record.connector}"
    out.append(_text(LEFT, 28, title, size=17, weight="bold"))
    sub = [f"{start:%Y-%m-%d %H:%M} - {end:%H:%M} {tzname}",
           f"{(t1 - t0) / 3600:.1f} h"]
    for part in (record.protocol, record.control_mode and f"{record.control_mode} mode",
                 record.stop_reason and f"stop: {record.stop_reason}"):
        if part:
            sub.append(part)
    out.append(_text(LEFT, 50, "    ".join(sub), size=12, fill="#555"))
    return out


def _panel_svg(panel: _Panel, samples: Sequence[Sample], y0: float, xticks: Sequence[float],
               x_of: Callable[[float], float]) -> list[str]:
    """One panel: its frame, title, grid, value axis, series and legend."""
    runs = {s.key: _runs(samples, s.get) for s in panel.series}
    values = [v for rs in runs.values() for r in rs for _, v in r]
    out = [f'<g id="panel-{panel.key}">',
           f'<rect x="{LEFT}" y="{y0}" width="{PLOT_W}" height="{PANEL_H}" '
           f'fill="#fafafa" stroke="#999" stroke-width="1"/>',
           _text(LEFT, y0 - 7, panel.title, size=12, weight="bold")]
    for t in xticks:
        x = x_of(t)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + PANEL_H}" '
                   f'stroke="#e2e2e2" stroke-width="1"/>')
    if not values:
        out.append(_text(LEFT + PLOT_W / 2, y0 + PANEL_H / 2 + 4, "no data", size=12,
                         anchor="middle", fill="#888"))
        out.append("</g>")
        return out
    lo, hi, yticks = _y_ticks(min(values), max(values), panel.signed)
    step = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0

    def y_of(v: float) -> float:
        return y0 + PANEL_H - (v - lo) / (hi - lo) * PANEL_H

    for v in yticks:
        y = y_of(v)
        zero = panel.signed and abs(v) < step * 1e-6
        dash = ' stroke-dasharray="5 3"' if zero else ""
        color = "#777" if zero else "#e2e2e2"
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" '
                   f'stroke="{color}" stroke-width="1"{dash}/>')
        out.append(_text(LEFT - 6, y + 4, _fmt_num(v, step), size=11, anchor="end",
                         fill="#444"))
    out.extend(_series_svg(panel, runs, y0, x_of, y_of))
    out.append("</g>")
    return out


def _series_svg(panel: _Panel, runs: Mapping[str, list[list[tuple[float, float]]]],
                y0: float, x_of: Callable[[float], float],
                y_of: Callable[[float], float]) -> list[str]:
    """A panel's lines (one polyline per run of known values) and, with several, legend."""
    out: list[str] = []
    legend_x = LEFT + PLOT_W
    for s in reversed(panel.series):
        if not runs[s.key]:
            continue
        pts_attr = []
        for r in runs[s.key]:
            pts = _thin(r, PLOT_W)
            pts_attr.append(" ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in pts))
        out.append(f'<g id="series-{s.key}" fill="none" stroke="{s.color}" '
                   f'stroke-width="1.8" stroke-linejoin="round">')
        out.extend(f'<polyline points="{p}"/>' for p in pts_attr)
        out.append("</g>")
        if len(panel.series) > 1:
            out.append(_text(legend_x, y0 - 7, f"\u2014 {s.label}", size=12,
                             anchor="end", fill=s.color, weight="bold"))
            legend_x -= 16 + 8 * len(s.label)
    return out


def _time_axis_svg(xticks: Sequence[float], x_of: Callable[[float], float], axis_y: float,
                   tz: tzinfo, tzname: str) -> list[str]:
    out: list[str] = []
    for t in xticks:
        x = x_of(t)
        out.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}" '
                   f'stroke="#555"/>')
        label = datetime.fromtimestamp(t, tz).strftime("%H:%M")
        out.append(_text(x, axis_y + 18, label, size=11, anchor="middle", fill="#444"))
    out.append(_text(LEFT + PLOT_W, axis_y + 34, f"time ({tzname})", size=11, anchor="end",
                     fill="#444"))
    return out


"""Session reports: JSON that round-trips and an SVG picture that renders."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evse._report import PLOT_W, Sample, SessionRecord, render_svg, write_report
from evse.energy.optimizer import MoneySummary

SVG_NS = "{http://www.w3.org/2000/svg}"
T0 = 1_700_067_600.0  # 2023-11-15 17:00 UTC


def v2g_session(step: float = 10.0, hours: float = 4.0) -> SessionRecord:
    """17:00-21:00: charge, sell at the 18:00-19:30 peak, charge again; a 6-minute gap
    without power readings."""
    samples = []
    soc = 40.0
    t = 0.0
    while t <= hours * 3600:
        h = t / 3600
        power: float | None = 11000.0 if h < 1 else (-9000.0 if h < 2.5 else 7000.0)
        if 1.5 <= h < 1.6:
            power = None
        soc += (power or 0.0) * step / 3.6e6 / 60 * 100
        volts = 380.0 + 0.3 * soc
        peak = 1 <= h < 2.5
        samples.append(Sample(T0 + t, volts, None if power is None else power / volts, power,
                              soc, 0.45 if peak else 0.20, 0.35 if peak else 0.10))
        t += step
    return SessionRecord(
        session_id="S-42 <&>", station_id="DE*ABC*E1", connector="1", started_at=T0,
        ended_at=T0 + hours * 3600, samples=tuple(samples), energy_in_kwh=18.3,
        energy_out_kwh=13.5,
        money=MoneySummary("EUR", 18.3, 13.5, cost_bought=3.9, revenue_sold=4.7,
                           degradation=0.7),
        protocol="ISO15118-20 DC_BPT", control_mode="Dynamic", stop_reason="EV requested",
        ev_id="02:00:00:aa:bb:cc", metadata={"tariff": "day-ahead", "v2g": True})


def test_files_json_round_trip(tmp_path: Path) -> None:
    record = v2g_session()
    paths = write_report(record, tmp_path / "reports")
    assert paths.json.is_file() and paths.svg is not None and paths.svg.is_file()
    assert paths.json.name == "DE-ABC-E1_1_20231115T170000Z_S-42.json"
    data = json.loads(paths.json.read_text())
    assert data["format"] == "evse-session-report" and data["version"] == 1
    assert data["money"]["net"] == pytest.approx(3.9 - 4.7 + 0.7)
    assert SessionRecord.from_dict(data) == record
    assert not list(tmp_path.rglob("*.tmp"))
    only_json = write_report(record, tmp_path / "j", svg=False)
    assert only_json.svg is None and only_json.json.is_file()
    with pytest.raises(ValueError, match="not a session report"):
        SessionRecord.from_dict({"format": "x"})


def test_svg_is_well_formed_and_has_every_series(tmp_path: Path) -> None:
    svg = write_report(v2g_session(), tmp_path).svg
    assert svg is not None
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG_NS}svg"
    groups = {g.get("id"): g for g in root.iter(f"{SVG_NS}g")}
    for key in ("voltage", "current", "power", "soc", "price", "sell_price"):
        lines = groups[f"series-{key}"].findall(f"{SVG_NS}polyline")
        assert lines, key
        for line in lines:
            points = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
            assert len(points) >= 2
            assert all(0 <= x <= 960 and y >= 0 for x, y in points)
    # The missing power readings break the power and current lines, not the others.
    assert len(groups["series-power"].findall(f"{SVG_NS}polyline")) == 2
    assert len(groups["series-voltage"].findall(f"{SVG_NS}polyline")) == 1
    texts = [t.text or "" for t in root.iter(f"{SVG_NS}text")]
    joined = "\n".join(texts)
    for title in ("Voltage (V)", "Current (A)", "Power (kW)", "SOC (%)", "Price (EUR/kWh)"):
        assert title in texts
    assert "Session S-42 <&> - station DE*ABC*E1, connector 1" in texts  # escaped, parsed back
    assert "net -0.10 EUR" in joined and "sold 4.70 EUR" in joined
    assert "17:00" in texts and "21:00" in texts and "time (UTC)" in texts
    assert "-10" in texts and "0" in texts  # the power axis goes negative


def test_long_sessions_are_thinned_but_keep_their_peaks() -> None:
    record = v2g_session(step=1.0, hours=10.0)  # 36,000 samples
    spiky = list(record.samples)
    spiky[20_000] = Sample(spiky[20_000].t, 950.0, 0.0, 0.0, 50.0, 0.2)  # one voltage spike
    text = render_svg(dataclasses.replace(record, samples=tuple(spiky)))
    root = ET.fromstring(text)
    line = next(g for g in root.iter(f"{SVG_NS}g") if g.get("id") == "series-voltage")
    points = [p for pl in line.findall(f"{SVG_NS}polyline")
              for p in pl.get("points", "").split()]
    assert len(points) <= 2 * PLOT_W + 2
    top = min(float(p.split(",")[1]) for p in points)
    panel = next(g for g in root.iter(f"{SVG_NS}g") if g.get("id") == "panel-voltage")
    frame = panel.find(f"{SVG_NS}rect")
    assert frame is not None and top == pytest.approx(float(frame.get("y", 0)), abs=20)
    assert len(text) < 400_000


def test_empty_and_ac_sessions_render() -> None:
    empty = SessionRecord("e", "st", "2", T0, T0, (), 0.0, 0.0)
    root = ET.fromstring(render_svg(empty))
    assert sum(1 for t in root.iter(f"{SVG_NS}text") if t.text == "no data") == 6  # money too
    ac = SessionRecord("ac", "st", "2", T0, T0 + 600,
                       tuple(Sample(T0 + i, None, 16.0, 11000.0, None, None)
                             for i in range(0, 600, 60)), 1.8, 0.0)
    root = ET.fromstring(render_svg(ac))
    ids = {g.get("id") for g in root.iter(f"{SVG_NS}g")}
    assert {"series-current", "series-power"} <= ids and "series-voltage" not in ids


def _imagemagick() -> str | None:
    exe = shutil.which("convert")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return exe if "Version: ImageMagick" in out.stdout else None


def test_svg_renders_to_png(tmp_path: Path) -> None:
    exe = _imagemagick()
    if exe is None:
        pytest.skip("ImageMagick's convert is not installed")
    svg = write_report(v2g_session(), tmp_path).svg
    assert svg is not None
    png = tmp_path / "session.png"
    subprocess.run([exe, str(svg), str(png)], check=True, timeout=60, capture_output=True)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width == 960 and height > 700


def test_nan_readings_are_stored_as_null(tmp_path: Path) -> None:
    record = SessionRecord("n", "st", "1", T0, T0 + 60,
                           (Sample(T0, float("nan"), 1.0, 400.0, 50.0, 0.3),
                            Sample(T0 + 30, 401.0, float("inf"), 400.0, 50.0, 0.3)), 0.1, 0.0)
    data = json.loads(write_report(record, tmp_path).json.read_text())
    assert data["samples"]["voltage"] == [None, 401.0]
    assert data["samples"]["current"] == [1.0, None]

"""`evse demo --protocol din`: the charger (sim HAL) and the simulated DIN SPEC 70121 EV in
one process over loopback, sharing one battery, with the same progress lines and summary
table as the -20 demo.

The SECC offers every implemented standard (as `evse secc --protocols iso20,iso2,din` does);
the EV offers DIN only, over plain TCP (DIN has no TLS), with external payment (the demo
authorizes at once). DIN is charge-only: bidirectional power transfer stays ISO 15118-20's,
and the summary says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from simulators.demo import DemoOptions

DIN_SCENARIO = "din_dc"


async def run_din_demo(options: DemoOptions, out: TextIO) -> int:
    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.protocol.config import SeccConfig
    from evse.protocol.standards import STANDARDS
    from hal.registry import create_backend
    from simulators.demo import _energy_port, _fmt_ms, _percentile, _print_reports, _progress
    from simulators.ev import BatteryLink
    from simulators.ev.client import run_session
    from simulators.ev.din_evcc import DinEvcc, get_din_scenario

    name = options.scenario if options.scenario.startswith("din_") else DIN_SCENARIO
    scenario = get_din_scenario(name, loop_interval=options.loop_interval,
                                speedup=options.speedup, loops=options.loops or 100)
    battery = scenario.battery.make()
    backend: Any = create_backend("sim", battery=battery)
    link = BatteryLink(battery, shared=True,
                       on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                            closed))
    station = Station.from_backends([backend], speedup=options.speedup)
    protocols = tuple(n for n in ("iso20", "iso2", "din") if STANDARDS[n].factory is not None)
    config = SeccConfig(evse_id="DE*EVS*E0000001", limits=supply_limits(backend),
                        auto_authorize=True, protocols=protocols)
    server = SeccServer(config, station, address="127.0.0.1", port=0)
    energy = _energy_port(server, options)
    await server.start()
    energy.start()
    assert server.port is not None
    print(f"evse demo: DIN SPEC 70121 scenario {scenario.name} (DC, external payment)",
          file=out)
    print(f"  SECC on 127.0.0.1:{server.port} (TCP; offers {', '.join(protocols)}), sim HAL at "
          f"{options.speedup:g}x, {scenario.loops} CurrentDemand loops", file=out, flush=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    progress = asyncio.create_task(_progress(server, station, link, options, out, started,
                                             _NoEvseStop()))
    evcc = DinEvcc(scenario, battery=link)
    try:
        report = await run_session(scenario, host="127.0.0.1",  # type: ignore[arg-type]
                                   port=server.port, tls=False, evcc=evcc)  # type: ignore[arg-type]
    finally:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        for _ in range(40):  # the SECC closes after the EV: let it record the session
            if not server.active:
                break
            await asyncio.sleep(0.025)
        await server.close()
        await energy.close()
    duration = loop.time() - started
    stats = server.turnaround
    rtts = [rtt for _, rtt in report.rtts]
    sessions = list(server.sessions)
    meter_in = sum(s.energy_in_wh for s in sessions) / 1000.0
    rows = [
        ("scenario", f"{scenario.name}: DIN SPEC 70121 DC, external payment, TCP over "
                     "loopback"),
        ("protocol", f"{report.protocol} (the SECC offered {', '.join(protocols)})"),
        ("result", f"{'OK' if report.success else 'FAILED'} ({report.reason})"),
        ("energy charged", f"{report.energy_charged_wh / 1000:.3f} kWh "
                           f"(charger meter {meter_in:.3f} kWh)"),
        ("energy discharged", "none: bidirectional power transfer is ISO 15118-20 only "
                              "(DIN SPEC 70121 charges)"),
        ("SOC", f"{report.initial_soc:.1f} % -> {report.final_soc:.1f} %"),
        ("duration", f"{duration:.1f} s real, {report.loops} CurrentDemand rounds "
                     f"(HAL at {options.speedup:g}x)"),
        ("messages", f"{len(report.messages)} requests, {len(rtts)} responses"),
        ("SECC turnaround p50/p99", f"{_fmt_ms(stats.percentile(50))} / "
                                    f"{_fmt_ms(stats.percentile(99))} ms (n={len(stats)})"),
        ("charge loop p50/p99", f"{_fmt_ms(stats.percentile(50, charge_loop=True))} / "
                                f"{_fmt_ms(stats.percentile(99, charge_loop=True))} ms "
                                f"(n={len(stats.loop)}; DIN budget 250 ms)"),
        ("EV round trip p50/p99", f"{_fmt_ms(_percentile(rtts, 50))} / "
                                  f"{_fmt_ms(_percentile(rtts, 99))} ms"),
    ]
    if report.evse_notifications:
        rows.append(("EVSE notifications", ", ".join(report.evse_notifications)))
    for warning in report.warnings:
        rows.append(("warning", warning))
    if not report.success:
        rows.append(("states", " > ".join(report.states)))
    width = max(len(k) for k, _ in rows)
    print("", file=out)
    print("Summary", file=out)
    print("-" * (width + 50), file=out)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}", file=out)
    print("-" * (width + 50), file=out, flush=True)
    if options.json_summary is not None:
        import json

        options.json_summary.write_text(json.dumps({
            "success": report.success, "reason": report.reason, "protocol": report.protocol,
            "energy_charged_wh": report.energy_charged_wh, "meter_in_kwh": meter_in,
            "duration_s": duration, "messages": len(report.messages),
            "turnaround_p50_s": stats.percentile(50), "turnaround_p99_s": stats.percentile(99),
            "sessions": [s.to_dict() for s in sessions],
        }, indent=2) + "\n")
    _print_reports(out, energy)
    return 0 if report.success else 1


class _NoEvseStop:
    """What `_progress` reads from a scenario: no operator emergency stop in the DIN demo."""

    expect_evse_stop = False

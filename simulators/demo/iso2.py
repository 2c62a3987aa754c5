"""`evse demo --protocol iso2`: the charger (sim HAL) and the simulated ISO 15118-2 EV (EIM,
plain TCP) in one process over loopback, then the summary table.

The station offers iso20 and iso2; the EV offers only -2, so supportedAppProtocol picks -2.
DC: the sim power stage moves the EV's battery (the EV's contactors gate it). AC: the charger
side (PWM, contactors, meter) runs; the EV does not simulate its on-board charger, so the
SOC stays. Bidirectional power transfer is ISO 15118-20 only: the summary says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any, TextIO

from simulators.demo import DemoOptions, _energy_port, _fmt_ms, _percentile, _print_reports

DEFAULT_ISO2_SCENARIO = "iso2_dc"


async def run_iso2_demo(options: DemoOptions, out: TextIO) -> int:
    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.protocol.config import SeccConfig, ServiceId
    from hal.registry import create_backend
    from simulators.battery import EvBattery
    from simulators.ev.client import Endpoint
    from simulators.ev.iso2_client import LOOP_REQUESTS, drive_iso2
    from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc

    scenario = ISO2_SCENARIOS[options.scenario]
    if options.loops is not None:
        scenario = dataclasses.replace(scenario, loops=options.loops)
    battery = EvBattery()
    backend: Any = create_backend("sim", battery=battery)
    station = Station.from_backends([backend], speedup=options.speedup)
    config = SeccConfig(
        evse_id="DE*EVS*E0000001", services=(ServiceId.DC, ServiceId.AC),
        limits=supply_limits(backend), protocols=("iso20", "iso2"),
        allow_plain_tcp_iso20=True, auto_authorize=True,
    )
    server = SeccServer(config, station, address="127.0.0.1", port=0, tls=None, tls_port=0)
    energy = _energy_port(server, options)
    await server.start()
    energy.start()
    port = server.port
    assert port is not None
    dc = scenario.energy == "dc"
    print(f"evse demo: scenario {scenario.name} (ISO 15118-2, EIM, "
          f"{'DC' if dc else 'AC'}), SECC on 127.0.0.1:{port} (TCP), sim HAL at "
          f"{options.speedup:g}x, {scenario.loops} charge loops", file=out, flush=True)
    ev = Iso2Evcc(scenario, battery=battery if dc else None,
                  on_contactors=(lambda closed: setattr(backend, "ev_contactor_closed", closed))
                  if dc else None)
    initial_soc = battery.soc
    loop = asyncio.get_running_loop()
    started = loop.time()
    progress = asyncio.create_task(_progress(server, station, battery, options, out, started))
    try:
        run = await drive_iso2(ev, Endpoint("127.0.0.1", port), response_timeout=2.0,
                               repeat_interval=options.loop_interval)
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
    sessions = list(server.sessions)
    stats = server.turnaround
    rtts = [t for _, t in run.rtts]
    loop_rtts = [t for name, t in run.rtts if name in LOOP_REQUESTS]
    meter_in = sum(s.energy_in_wh for s in sessions) / 1000.0
    rows = [
        ("scenario", f"{scenario.name}: ISO 15118-2 {'DC' if dc else 'AC'}, EIM, TCP over "
                     "loopback"),
        ("protocol", sessions[-1].protocol if sessions else "(no session)"),
        ("result", f"{'OK' if run.success else 'FAILED'} ({run.done.reason})"),
        ("energy charged", f"{meter_in:.3f} kWh (charger meter)"),
        ("energy discharged", "0.000 kWh: bidirectional power transfer is ISO 15118-20 only"),
        ("SOC", f"{initial_soc * 100:.1f} % -> {battery.soc * 100:.1f} %"
                + ("" if dc else " (the EV's on-board charger is not simulated)")),
        ("duration", f"{duration:.1f} s real, charge loop {len(loop_rtts)} rounds "
                     f"(HAL at {options.speedup:g}x)"),
        ("messages", f"{len(run.rtts)} requests over {run.connections} connection(s)"),
        ("SECC turnaround p50/p99", f"{_fmt_ms(stats.percentile(50))} / "
                                    f"{_fmt_ms(stats.percentile(99))} ms (n={len(stats)})"),
        ("charge loop p50/p99", f"{_fmt_ms(stats.percentile(50, charge_loop=True))} / "
                                f"{_fmt_ms(stats.percentile(99, charge_loop=True))} ms "
                                f"(n={len(stats.loop)})"),
        ("EV round trip p50/p99", f"{_fmt_ms(_percentile(rtts, 50))} / "
                                  f"{_fmt_ms(_percentile(rtts, 99))} ms"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nSummary", file=out)
    print("-" * (width + 50), file=out)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}", file=out)
    print("-" * (width + 50), file=out, flush=True)
    _print_reports(out, energy)
    return 0 if run.success else 1


async def _progress(server: Any, station: Any, battery: Any, options: DemoOptions,
                    out: TextIO, started: float) -> None:
    loop = asyncio.get_running_loop()
    period = 1.0 / options.progress_hz if options.progress_hz > 0 else 0.25
    connector = station.connectors[0]
    if options.quiet:
        return
    print(f"  {'t/s':>6}  {'state':<28} {'SOC/%':>6} {'V':>7} {'A':>7} {'kW':>7}",
          file=out, flush=True)
    while True:
        conn = server.connection(connector.id)
        state = str(conn.state) if conn is not None else "(no connection)"
        st = connector.controller.status()
        print(f"  {loop.time() - started:6.1f}  {state:<28} {battery.soc * 100:6.1f} "
              f"{st.voltage:7.1f} {st.current:7.1f} {st.power / 1000:7.1f}", file=out,
              flush=True)
        await asyncio.sleep(period)

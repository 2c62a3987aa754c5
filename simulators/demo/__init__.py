"""`evse demo`: the charger (sim HAL) and a simulated EV in one process over loopback.

The sim power stage and the EV share one battery object (`BatteryLink(shared=True)`), so
the energy really flows: the converter's current moves the SOC the EV reports. The HAL runs
`speedup` times faster than real time (ramps, insulation test, energy); the ISO 15118
exchange itself runs in real time with the EV's normal pacing. The default scenario is a
-20 DC_BPT session in Scheduled mode whose schedule has a discharge window in the middle:
the EV charges, discharges (negative current) as the schedule says, charges again and stops.

While it runs it prints progress lines (state, SOC, V, A, kW) a few times a second, then a
summary with the energy both ways, the duration, the message count and the SECC's
turnaround (request's last byte in -> response's first byte out) p50/p99.

`--pnc` (Plug & Charge, simulators/demo/pnc.py): a throw-away PnC test PKI (certs.pnc_pki, secp521r1
or Ed448) in a temporary directory, TLS 1.3 with the SECC chain and the vehicle certificate
(mutual authentication), PnC offered with the MO root installed, and the EV authorizing with
its contract in strict mode (no fallback to EIM; the demo's backend grants PnC only). With
`--install-certificate` the EV starts without a contract and gets one from a local CPS through
CertificateInstallation first. The summary shows the eMAID, the signature algorithm and the
verification time; the exit code is 1 unless the session was authorized by PnC.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import ssl

    from evse.protocol.config import SeccConfig
    from simulators.ev import BatteryLink
    from simulators.ev.scenarios import ScenarioConfig

log = logging.getLogger("evse.demo")

DEFAULT_SCENARIO = "dc_bpt_scheduled"
DEFAULT_BPT_LOOPS = 100


@dataclass
class DemoOptions:
    scenario: str = DEFAULT_SCENARIO
    tls: bool = False
    speedup: float = 60.0
    loops: int | None = None  # charge-loop rounds; None: 100 for BPT schedules, else scenario's
    loop_interval: float = 0.1  # real seconds between ChargeLoopReqs
    progress_hz: float = 4.0
    quiet: bool = False  # no progress lines
    json_summary: Path | None = None
    reports: Path | None = None  # session reports; None: <tmp>/evse-demo-reports
    pnc: bool = False  # Plug & Charge over TLS 1.3 (implies tls)
    algorithm: str = "secp521r1"  # PnC PKI: secp521r1 or ed448
    install_certificate: bool = False  # PnC: the EV gets its contract via the local CPS
    protocol: str = "iso20"  # the EV's standard: iso20, iso2 (demo_iso2.py), din (demo_din.py)
    ocpp: bool = False  # OCPP 2.1 to the CSMS simulator (simulators/demo/ocpp.py); -20 only


def discharge_window(loops: int, loop_interval: float) -> tuple[int, int]:
    """(t0, t1) s after ScheduleExchange: the middle third of the charge loop, roughly."""
    total = loops * loop_interval
    t0 = int(1.0 + 0.3 * total)
    t1 = max(t0 + 1, int(1.0 + 0.65 * total))
    return t0, t1


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.2f}"


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    rank = max(1, -(-int(p * len(data)) // 100))
    return data[min(rank, len(data)) - 1]


async def run_demo(options: DemoOptions, out: TextIO | None = None) -> int:
    """Run the demo; 0 when the session went as the scenario expects, 1 otherwise."""
    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.energy.schedule import DefaultScheduleProvider
    from evse.protocol.config import SeccConfig, ServiceId
    from hal.registry import create_backend
    from simulators.ev.client import run_session

    out = out or sys.stdout
    if options.protocol == "din":
        from simulators.demo.din import run_din_demo

        return await run_din_demo(options, out)
    scenario = _demo_scenario(options)
    n_loops = scenario.max_loops or 100
    window = discharge_window(n_loops, options.loop_interval)

    battery = scenario.battery.make()
    backend: Any = create_backend("sim", battery=battery)
    link = _battery_link(battery, backend, dc=scenario.service.is_dc)
    station = Station.from_backends([backend], speedup=options.speedup)
    config = SeccConfig(
        evse_id="DE*EVS*E0000001",
        services=(ServiceId.DC, ServiceId.DC_BPT, ServiceId.AC, ServiceId.AC_BPT),
        limits=supply_limits(backend),
        allow_plain_tcp_iso20=not options.tls,
        auto_authorize=True,
        schedule_provider=DefaultScheduleProvider(discharge_window=window),
    )
    use_tls = options.tls or options.pnc
    if use_tls:
        config = dataclasses.replace(config, allow_plain_tcp_iso20=False)
    with contextlib.ExitStack() as stack:
        sec = _DemoSecurity.make(stack, options, config, scenario)
        config, scenario, pnc = sec.config, sec.scenario, sec.pnc
        tls_ctx, ev_ctx = sec.tls_ctx, sec.ev_ctx
        server = SeccServer(config, station, address="127.0.0.1",
                            port=None if use_tls else 0, tls=tls_ctx, tls_port=0,
                            authorize=pnc.authorize if pnc is not None else None)
        energy = _energy_port(server, options)  # session report with the money summary
        ocpp: Any = None
        if options.ocpp:
            from simulators.demo.ocpp import OcppDemo

            ocpp = OcppDemo()
            server.config = dataclasses.replace(server.config, auto_authorize=False)
            await ocpp.start(server, station)
        await server.start()
        energy.start()
        port = server.tls_port if use_tls else server.port
        assert port is not None
        transport = "TLS 1.3" if use_tls else "TCP"
        _print_banner(out, options, scenario, f"127.0.0.1:{port} ({transport})", n_loops,
                      window, sec)
        from simulators.demo_link import plug_in  # plug-in, 5 %, SLAC before the session

        plugged = await plug_in(server, station.connectors[0], out)
        loop = asyncio.get_running_loop()
        started = loop.time()
        progress = asyncio.create_task(_progress(server, station, link, options, out, started,
                                                 scenario))
        try:
            report = await run_session(scenario, host="127.0.0.1", port=port, tls=use_tls,
                                       ssl_context=ev_ctx, battery=link)
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
            for _ in range(40):  # the SECC closes after the EV: let it record the session
                if not server.active:
                    break
                await asyncio.sleep(0.025)
            await plugged.unplug()
            await server.close()
            await energy.close()
            if ocpp is not None:
                await ocpp.stop()
    duration = loop.time() - started
    sessions = list(server.sessions)
    extra = pnc.summary_rows(report, sessions) if pnc is not None else []
    extra = plugged.summary_rows() + extra
    if ocpp is not None:
        extra += ocpp.summary_rows()
    _summary(out, report, server, options, transport, duration, scenario, extra)
    _print_reports(out, energy)
    if pnc is not None and not pnc.used_pnc(report, sessions):
        return 1
    return 0 if report.success else 1


def _demo_scenario(options: DemoOptions) -> ScenarioConfig:
    """The scenario at the demo's speed; V2G scenarios get enough loops to discharge."""
    from simulators.ev import get_scenario

    scenario = get_scenario(options.scenario)
    loops = options.loops
    if loops is None and scenario.expect_discharge:
        loops = DEFAULT_BPT_LOOPS
    changes: dict[str, Any] = {"speedup": options.speedup, "loop_interval": options.loop_interval}
    if loops is not None:
        changes["max_loops"] = loops
    return scenario.replace(**changes)


def _battery_link(battery: Any, backend: Any, *, dc: bool) -> BatteryLink:
    from simulators.ev import BatteryLink

    if dc:  # the power stage moves the shared battery; the EV's contactors gate it
        return BatteryLink(battery, shared=True,
                           on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                                closed))
    # AC: the EV's on-board charger (simulated by the EV) moves the battery
    return BatteryLink(battery, shared=False)


@dataclass
class _DemoSecurity:
    """TLS (a throw-away test PKI) or Plug & Charge: the contexts of both ends and what
    PnC changes in the SECC's configuration and the EV's scenario."""

    config: SeccConfig
    scenario: ScenarioConfig
    pnc: Any = None  # simulators.demo.pnc.PncDemo
    pki_dir: str | None = None
    tls_ctx: ssl.SSLContext | None = None
    ev_ctx: ssl.SSLContext | None = None

    @classmethod
    def make(cls, stack: contextlib.ExitStack, options: DemoOptions, config: SeccConfig,
             scenario: ScenarioConfig) -> _DemoSecurity:
        if options.pnc:
            from simulators.demo.pnc import PncDemo

            pki_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="evse-demo-pnc-"))
            pnc = PncDemo.create(pki_dir, options.algorithm,
                                 install_certificate=options.install_certificate)
            return cls(dataclasses.replace(config, **pnc.config_changes()),
                       pnc.scenario(scenario), pnc, pki_dir, pnc.secc_tls(), pnc.ev_tls())
        if options.tls:
            from certs.make_pki import make_pki
            from evse.aio.tls import secc_context
            from simulators.ev.client import make_ssl_context

            pki_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="evse-demo-pki-"))
            pki = make_pki(pki_dir)
            return cls(config, scenario, None, pki_dir,
                       secc_context(pki.secc_chain, pki.secc_key).context,
                       make_ssl_context(pki.root_cert))
        return cls(config, scenario)


def _print_banner(out: TextIO, options: DemoOptions, scenario: ScenarioConfig, where: str,
                  n_loops: int, window: tuple[int, int], sec: _DemoSecurity) -> None:
    print(f"evse demo: scenario {scenario.name} ({scenario.description})", file=out)
    peak = demo_prices().slots[0]
    print(f"  prices: no tariff configured, so the bundled day's evening peak "
          f"(BE day-ahead 2024-06-14 20:00 + retail adders): buy {peak.buy:.4f}, "
          f"sell {peak.sell:.4f} EUR/kWh", file=out)
    print(f"  SECC on {where}, sim HAL at {options.speedup:g}x, {n_loops} charge loops"
          + (f", schedule discharges {window[0]}-{window[1]} s after ScheduleExchange"
             if scenario.service.is_bpt else ""), file=out, flush=True)
    if sec.pnc is not None:
        print(f"  Plug & Charge: {options.algorithm} test PKI in {sec.pki_dir}, "
              + ("EV without a contract: CertificateInstallation via the local CPS"
                 if options.install_certificate else f"contract {sec.pnc.pki.emaid}")
              + ", no fallback to EIM", file=out, flush=True)


async def _progress(server: Any, station: Any, link: Any, options: DemoOptions, out: TextIO,
                    started: float, scenario: Any) -> None:
    """Progress lines; also plays the operator in the emergency_stop scenario."""
    loop = asyncio.get_running_loop()
    period = 1.0 / options.progress_hz if options.progress_hz > 0 else 0.25
    connector = station.connectors[0]
    loop_since: float | None = None
    pressed = False
    if not options.quiet:
        print(f"  {'t/s':>6}  {'state':<28} {'SOC/%':>6} {'V':>7} {'A':>7} {'kW':>7}",
              file=out, flush=True)
    while True:
        now = loop.time()
        conn = server.connection(connector.id)
        state = str(conn.state) if conn is not None else "(no connection)"
        if "ChargeLoop" in state:
            loop_since = loop_since if loop_since is not None else now
            if scenario.expect_evse_stop and not pressed and now - loop_since > 1.5:
                pressed = True
                print("  ** operator presses the emergency stop button **", file=out, flush=True)
                connector.backend.board.press_emergency_stop_button()
        st = connector.controller.status()
        if not options.quiet:
            print(f"  {now - started:6.1f}  {state:<28} {link.soc * 100:6.1f} {st.voltage:7.1f} "
                  f"{st.current:7.1f} {st.power / 1000:7.1f}", file=out, flush=True)
        await asyncio.sleep(period)


def _summary(out: TextIO, report: Any, server: Any, options: DemoOptions, transport: str,
             duration: float, scenario: Any, extra: list[tuple[str, str]] | None = None
             ) -> None:
    stats = server.turnaround
    rtts = [rtt for _, rtt in report.rtts]
    sessions = list(server.sessions)
    meter_in = sum(s.energy_in_wh for s in sessions) / 1000.0
    meter_out = sum(s.energy_out_wh for s in sessions) / 1000.0
    requests = len(report.messages)
    rows = [
        ("scenario", f"{scenario.name}: {scenario.service.name} {scenario.control_mode}, "
                     f"{transport} over loopback"),
        ("result", f"{'OK' if report.success else 'FAILED'} ({report.reason})"),
        ("energy charged", f"{report.energy_charged_wh / 1000:.3f} kWh "
                           f"(charger meter {meter_in:.3f} kWh)"),
        ("energy discharged", f"{report.energy_discharged_wh / 1000:.3f} kWh "
                              f"(charger meter {meter_out:.3f} kWh)"),
        ("SOC", f"{report.initial_soc:.1f} % -> {report.final_soc:.1f} %"),
        ("duration", f"{duration:.1f} s real, charge loop {report.loops} rounds "
                     f"(HAL at {options.speedup:g}x)"),
        ("messages", f"{requests} requests, {len(rtts)} responses over "
                     f"{report.connections} connection(s)"),
        ("SECC turnaround p50/p99", f"{_fmt_ms(stats.percentile(50))} / "
                                    f"{_fmt_ms(stats.percentile(99))} ms (n={len(stats)}; "
                                    "request's last byte -> response's first byte)"),
        ("charge loop p50/p99", f"{_fmt_ms(stats.percentile(50, charge_loop=True))} / "
                                f"{_fmt_ms(stats.percentile(99, charge_loop=True))} ms "
                                f"(n={len(stats.loop)})"),
        ("EV round trip p50/p99", f"{_fmt_ms(_percentile(rtts, 50))} / "
                                  f"{_fmt_ms(_percentile(rtts, 99))} ms"),
    ]
    rows += extra or []
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
            "success": report.success, "reason": report.reason,
            "energy_charged_wh": report.energy_charged_wh,
            "energy_discharged_wh": report.energy_discharged_wh,
            "meter_in_kwh": meter_in, "meter_out_kwh": meter_out,
            "duration_s": duration, "messages": requests,
            "turnaround_p50_s": stats.percentile(50), "turnaround_p99_s": stats.percentile(99),
            "sessions": [s.to_dict() for s in sessions],
        }, indent=2) + "\n")


def main_demo(options: DemoOptions) -> int:
    from simulators.ev import scenario_names

    if options.protocol == "iso2":
        return _main_iso2(options)
    if options.protocol == "din" and (options.tls or options.pnc):
        print("evse demo: DIN SPEC 70121 runs over plain TCP with external payment (no --tls, "
              "--pnc)", file=sys.stderr)
        return 2
    if options.protocol != "din" and options.scenario not in scenario_names():
        print(f"evse demo: unknown scenario {options.scenario!r}; one of "
              f"{', '.join(scenario_names())}", file=sys.stderr)
        return 2
    if options.install_certificate and not options.pnc:
        print("evse demo: --install-certificate needs --pnc", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_demo(options))
    except KeyboardInterrupt:
        return 130


def _main_iso2(options: DemoOptions) -> int:
    from simulators.demo.iso2 import DEFAULT_ISO2_SCENARIO, run_iso2_demo
    from simulators.ev.iso2_evcc import ISO2_SCENARIOS

    if options.scenario == DEFAULT_SCENARIO:
        options = dataclasses.replace(options, scenario=DEFAULT_ISO2_SCENARIO)
    if options.scenario not in ISO2_SCENARIOS or options.tls or options.pnc:
        print(f"evse demo --protocol iso2: scenarios {', '.join(ISO2_SCENARIOS)}; EIM over "
              "TCP (no --tls/--pnc yet)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_iso2_demo(options, sys.stdout))
    except KeyboardInterrupt:
        return 130


def _energy_port(server: Any, options: DemoOptions) -> Any:
    """The station port, for the session report (JSON + SVG, SOC, prices, money)."""
    from evse.aio.station_port import SeccStationPort

    directory = options.reports or Path(tempfile.gettempdir()) / "evse-demo-reports"
    return SeccStationPort(server, station_id=server.config.evse_id, plan_schedules=False,
                           reports_dir=directory, prices=demo_prices())


def demo_prices() -> Any:
    """The quick demo has no tariff: it prices its session with the bundled day's evening
    peak (2024-06-14 20:00, Belgian day-ahead + the default retail adders), so the energy it
    sells is paid what a V2G export at the peak earns, never zero."""
    from evse.energy.data.be_2024 import DAYS
    from evse.energy.prices import PriceCurve
    from evse.energy.tariff import RetailTariff

    tariff, wholesale = RetailTariff(), DAYS["2024-06-14"][20]
    return PriceCurve.flat(tariff.buy(wholesale), tariff.sell(wholesale))


def _print_reports(out: TextIO, energy: Any) -> None:
    for paths in energy.report_paths:
        svg = f" (+ {paths.svg.name})" if paths.svg is not None else ""
        print(f"  session report: {paths.json}{svg}", file=out)
    record = energy.last_record
    if record is not None and record.money is not None:
        m = record.money
        print(f"  money ({m.currency}): bought {m.cost_bought:.4f}, sold {m.revenue_sold:.4f}, "
              f"degradation {m.degradation:.4f}, net {m.net:.4f}", file=out)
    v = record.value if record is not None else None
    if v is not None:
        print(f"  value ({v.currency}): wear {v.wear_cost:.4f} (charging at full power on "
              f"arrival: {v.baseline_wear_cost:.4f}), so discharging caused "
              f"{max(0.0, v.wear_cost - v.baseline_wear_cost):.4f} of wear for "
              f"{v.revenue_sold:.4f} of revenue; net benefit {v.net_benefit:+.4f}", file=out)
    out.flush()

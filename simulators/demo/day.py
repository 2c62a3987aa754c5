"""`evse demo --day`: one evening-to-morning V2G day with real day-ahead prices, compressed.

The car arrives at 18:00 on 2024-06-14 (Belgian day-ahead prices, evse.energy.data.be_2024,
plus the explicit retail adders of evse.energy.tariff) and leaves at 07:30 with its target
SOC; the stay is compressed to `seconds` of real time.

`run_day_stack` (what `evse demo --day` runs): the SECC with the sim HAL at the day's speedup
and the simulated EV in an ISO 15118-20 DC_BPT Dynamic session over loopback, one shared
battery. The demo plays the home energy manager: every slot it re-plans (evse.energy.provider,
wear tables included) from the SOC it sees and hands the setpoint to the station port
(`set_setpoint`, what the MQTT `setpoint` command does); from 23:00 to 00:00 the grid is
down (`set_outage`) and the station port's V2H runner makes the car supply the house, then
planning resumes. `run_day`: the same day on a plain battery model without the ISO session
(fast, deterministic). At the end: the session report (JSON + SVG), the owner's daily
statement, and a summary against the baseline (the same energy charged at full power on
arrival). No network beyond loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from evse._report import Sample, SessionRecord, write_report
from evse._statement import write_statement
from evse.aio.v2h_runner import V2hRunner
from evse.energy.accounting import curve_lookup
from evse.energy.optimizer import MoneySummary, setpoint_at
from evse.energy.provider import EnergyPolicy, PlanningScheduleProvider
from evse.energy.tariff import RetailTariff, bundled_day_curve
from evse.energy.value import session_value
from evse.protocol.limits import EvseLimits

if TYPE_CHECKING:
    from evse.aio.station_port import SeccStationPort
    from evse.energy.optimizer import Plan

BRUSSELS_SUMMER = timezone(timedelta(hours=2), "CEST")
DAYS = ("2024-06-14", "2024-06-15")


def _at(day: str, hh: int, mm: int = 0) -> float:
    y, m, d = (int(x) for x in day.split("-"))
    return datetime(y, m, d, hh, mm, tzinfo=BRUSSELS_SUMMER).timestamp()


@dataclass
class DayOptions:
    seconds: float = 60.0  # real seconds for the whole stay (the compression)
    step_s: float = 60.0  # simulated seconds per control step
    reports: Path | None = None
    tariff: RetailTariff = field(default_factory=RetailTariff)
    policy: EnergyPolicy = field(default_factory=lambda: EnergyPolicy(
        reserve_soc=30.0, target_soc=80.0, capacity_kwh=60.0))
    power_w: float = 11_000.0  # charger and car, both directions
    arrival_soc: float = 50.0
    home_load_w: float = 3_000.0  # the house during the outage
    quiet: bool = False


async def run_day(options: DayOptions, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    pol = options.policy
    arrival, departure = _at(DAYS[0], 18), _at(DAYS[1], 7, 30)
    outage = (_at(DAYS[0], 23), _at(DAYS[1], 0))
    prices = bundled_day_curve(DAYS, options.tariff)
    provider = PlanningScheduleProvider(prices, pol)
    limits = EvseLimits(max_charge_current=32.0, max_voltage=400.0,
                        max_charge_power=options.power_w, max_discharge_power=options.power_w)
    runner = V2hRunner(reserve_soc=pol.reserve_soc,
                       discharge_efficiency=pol.discharge_efficiency)
    cap = pol.capacity_kwh
    soc = options.arrival_soc
    steps = math.ceil((departure - arrival) / options.step_s)
    pause = options.seconds / steps
    print(f"evse demo --day: {DAYS[0]} 18:00 -> {DAYS[1]} 07:30 CEST in about "
          f"{options.seconds:g} s; Belgian day-ahead prices (ENTSO-E via the bundled data) "
          f"+ supplier {options.tariff.supplier_margin:g}, grid fee "
          f"{options.tariff.grid_fee:g}, tax {options.tariff.energy_tax:g}/kWh, VAT "
          f"{options.tariff.vat:.0%}; export at {options.tariff.export_share:g} x wholesale "
          f"- {options.tariff.export_fee:g}/kWh; {pol.chemistry.upper()} wear tables, "
          f"battery {cap:g} kWh, {options.power_w / 1000:g} kW; grid outage 23:00-00:00",
          file=out, flush=True)
    samples: list[Sample] = []
    soc_log: list[tuple[float, float]] = []
    plan = None
    last_plan_slot = None
    energy_in = energy_out = v2h_kwh = 0.0
    t = arrival
    for _ in range(steps):
        dt = min(options.step_s, departure - t)
        in_outage = outage[0] <= t < outage[1]
        if runner.set_outage(in_outage, options.home_load_w) and not options.quiet:
            what = "DOWN: V2H supplies the house" if in_outage else "back: re-planning"
            print(f"  {_clock(t)}  grid {what}", file=out, flush=True)
            plan = None
        if in_outage:
            setpoint, _newly = runner.step("1", soc=soc, share=1,
                                           max_discharge_w=options.power_w, capacity_kwh=cap,
                                           dt=dt)
            power = setpoint.power_w
        else:
            slot = math.floor(t / pol.slot_s)
            if plan is None or slot != last_plan_slot:  # re-plan every slot from the SOC seen
                plan = provider.make_plan(now=t, departure=departure, soc=soc, target_soc=None,
                                          minimum_soc=None, ev_limits=None, evse_limits=limits,
                                          bpt=True)
                last_plan_slot = slot
                first = plan.slots[0] if plan.slots else None
                if first is not None and not options.quiet:
                    print(f"  {_clock(t)}  SOC {soc:5.1f} %  {first.power_w / 1000:+6.1f} kW  "
                          f"buy {first.buy:.3f} sell {first.sell:.3f}  {first.reason}",
                          file=out, flush=True)
            power = setpoint_at(plan, t)
        p = prices.at(t)
        samples.append(Sample(t, power=power, soc=soc, price=p.buy,
                              sell_price=None if in_outage else p.sell))
        soc_log.append((t, soc))
        kwh = power * dt / 3.6e6
        if in_outage:
            v2h_kwh -= kwh
        if kwh >= 0:
            soc += kwh * pol.charge_efficiency / cap * 100.0
            energy_in += kwh
        else:
            soc += kwh / pol.discharge_efficiency / cap * 100.0
            energy_out -= kwh
        soc = min(100.0, max(0.0, soc))
        t += dt
        await asyncio.sleep(pause)
    soc_log.append((t, soc))
    samples.append(Sample(t, power=0.0, soc=soc, price=prices.buy_at(t),
                          sell_price=prices.sell_at(t)))
    return _finish(options, out, samples, soc_log, prices, arrival, departure, energy_in,
                   energy_out, soc, outage, v2h_kwh)


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, BRUSSELS_SUMMER).strftime("%H:%M")


def _finish(options: DayOptions, out: TextIO, samples: list[Sample],
            soc_log: list[tuple[float, float]], prices: object, arrival: float,
            departure: float, energy_in: float, energy_out: float, soc: float,
            outage: tuple[float, float], v2h_kwh: float) -> int:
    pol = options.policy
    wear = pol.wear_model()
    assert wear is not None
    grid = curve_lookup(prices)  # type: ignore[arg-type]

    def lookup(t: float) -> tuple[float, float]:
        buy, sell = grid(t)  # the house's energy in an outage is supplied, not sold
        return (buy, 0.0) if outage[0] <= t < outage[1] else (buy, sell)

    value = session_value(currency="EUR", prices=lookup,
                          samples=[(s.t, s.power or 0.0) for s in samples], soc_log=soc_log,
                          start=arrival, end=departure, energy_in_kwh=energy_in,
                          energy_out_kwh=energy_out, wear=wear, max_charge_w=options.power_w,
                          charge_efficiency=pol.charge_efficiency)
    money = MoneySummary("EUR", energy_in, energy_out, value.cost_bought, value.revenue_sold,
                         value.wear_cost)
    record = SessionRecord("DAY-2024-06-14", "DEMO-DAY", "1", arrival, departure,
                           tuple(samples), energy_in, energy_out, money,
                           protocol="simulated (energy layer only)", control_mode="Dynamic",
                           stop_reason="departure",
                           metadata={"prices": "ENTSO-E day-ahead BE 2024-06-14/15",
                                     "tariff": str(options.tariff), "wear_model":
                                     wear.tables.MODEL}, value=value)
    directory = options.reports or Path(tempfile.gettempdir()) / "evse-demo-day"
    paths = write_report(record, directory, tz=BRUSSELS_SUMMER)
    statement = write_statement([record], directory, period="day", tz=BRUSSELS_SUMMER)
    target_met = soc >= pol.target_soc - 0.5
    rows = [
        ("SOC", f"{options.arrival_soc:.1f} % at 18:00 -> {soc:.1f} % at 07:30 "
                f"(target {pol.target_soc:g} %: {'met' if target_met else 'MISSED'})"),
        ("energy", f"bought {energy_in:.2f} kWh, sold {energy_out - v2h_kwh:.2f} kWh to the "
                   f"grid, {v2h_kwh:.2f} kWh to the house in the outage (V2H, unpaid)"),
        ("this stay", f"bought {value.cost_bought:.2f} EUR, sold {value.revenue_sold:.2f} EUR"
                      f", wear {value.wear_cost:.2f} EUR: net cost {value.net_cost:.2f} EUR"),
        ("baseline", f"{value.baseline_energy_kwh:.2f} kWh at full power on arrival: "
                     f"{value.baseline_cost:.2f} EUR + wear {value.baseline_wear_cost:.2f} EUR"
                     f" = {value.baseline_net_cost:.2f} EUR"),
        ("net benefit", f"{value.net_benefit:+.2f} EUR against the baseline"),
        ("report", f"{paths.json} (+ {paths.svg.name if paths.svg else '-'})"),
        ("statement", f"{statement.json} (+ {statement.svg.name})"),
    ]
    print("\nSummary", file=out)
    for k, v in rows:
        print(f"  {k:<12} {v}", file=out)
    out.flush()
    return 0 if target_met and value.net_benefit > 0 else 1


def main_day(options: DayOptions) -> int:
    try:
        return asyncio.run(run_day_stack(options))
    except KeyboardInterrupt:
        return 130


__all__ = ["DayOptions", "main_day", "run_day", "run_day_stack"]


async def run_day_stack(options: DayOptions, out: TextIO | None = None) -> int:
    """The same day through the real stack: the SECC (sim HAL at the day's speedup) and the
    simulated EV in an ISO 15118-20 DC_BPT Dynamic session over loopback, the station port
    (evse.aio.station_port) taking setpoints as MQTT would and running V2H in the outage."""
    import dataclasses

    from evse.aio.app import supply_limits
    from evse.aio.secc_server import SeccServer, Station
    from evse.aio.station_port import SeccStationPort
    from evse.protocol.config import SeccConfig, ServiceId
    from hal.registry import create_backend
    from simulators.ev import BatteryLink, get_scenario
    from simulators.ev.client import run_session
    from simulators.ev.scenarios import BatteryParams

    out = out or sys.stdout
    pol = options.policy
    arrival, departure = _at(DAYS[0], 18), _at(DAYS[1], 7, 30)
    outage = (_at(DAYS[0], 23), _at(DAYS[1], 0))
    prices = bundled_day_curve(DAYS, options.tariff)
    cap, p_max = pol.capacity_kwh, options.power_w
    speedup = (departure - arrival) / options.seconds
    battery = BatteryParams(capacity_kwh=cap, soc=options.arrival_soc / 100.0,
                            max_charge_power=p_max, max_discharge_power=p_max).make()
    backend: Any = create_backend("sim", battery=battery)
    link = BatteryLink(battery, shared=True, on_contactors=lambda closed: setattr(
        backend, "ev_contactor_closed", closed))
    station = Station.from_backends([backend], speedup=speedup)
    limits = dataclasses.replace(supply_limits(backend), max_charge_power=p_max,
                                 max_discharge_power=p_max)
    config = SeccConfig(evse_id="BE*DEM*E0000001", services=(ServiceId.DC, ServiceId.DC_BPT),
                        limits=limits, allow_plain_tcp_iso20=True, auto_authorize=True)
    server = SeccServer(config, station, address="127.0.0.1", port=0)
    loop = asyncio.get_running_loop()
    start = [loop.time()]

    def clock() -> float:  # the day's clock: the HAL's speedup from arrival
        return arrival + (loop.time() - start[0]) * speedup

    port = SeccStationPort(server, station_id=config.evse_id, policy=pol, prices=prices,
                           plan_schedules=False, clock=clock, control_interval=0.05)
    provider = PlanningScheduleProvider(prices, pol)
    scenario = get_scenario("dc_bpt_dynamic").replace(
        speedup=speedup, loop_interval=0.1, max_loops=int(options.seconds / 0.1) + 200,
        departure_time=int(departure - arrival), target_soc=pol.target_soc)
    await server.start()
    port.start()
    print(f"evse demo --day: {DAYS[0]} 18:00 -> {DAYS[1]} 07:30 CEST in about "
          f"{options.seconds:g} s (HAL at {speedup:.0f}x): ISO 15118-20 DC_BPT Dynamic over "
          f"loopback; Belgian day-ahead prices (ENTSO-E, bundled) + supplier "
          f"{options.tariff.supplier_margin:g}, grid fee {options.tariff.grid_fee:g}, tax "
          f"{options.tariff.energy_tax:g}/kWh, VAT {options.tariff.vat:.0%}; export "
          f"{options.tariff.export_share:g} x wholesale - {options.tariff.export_fee:g}/kWh; "
          f"{pol.chemistry.upper()} wear tables, {cap:g} kWh, {p_max / 1000:g} kW; grid "
          "outage 23:00-00:00", file=out, flush=True)
    start[0] = loop.time()
    session = asyncio.create_task(run_session(scenario, host="127.0.0.1", port=server.port,
                                              tls=False, battery=link))
    samples: list[Sample] = []
    soc_log: list[tuple[float, float]] = []
    meter = _DayMeter()
    ems = _HomeEms(port, provider, limits, options, out, departure)
    connector = station.connectors[0]
    try:
        while not session.done():
            t = clock()
            soc = battery.soc * 100.0
            power = connector.controller.status().power
            meter.read(t, power, ems.in_outage)
            p = prices.at(t)
            now_outage = outage[0] <= t < outage[1]
            samples.append(Sample(t, power=power, soc=soc, price=p.buy,
                                  sell_price=None if now_outage else p.sell))
            soc_log.append((t, soc))
            if t >= departure:
                with contextlib.suppress(Exception):
                    port.stop("1")
                break
            ems.steer(t, soc, now_outage)
            await asyncio.sleep(0.05)
        report = await asyncio.wait_for(session, 30.0)
    finally:
        if not session.done():
            session.cancel()
            with contextlib.suppress(BaseException):
                await session
        await port.close()
        await server.close()
    t_end = clock()
    soc_end = battery.soc * 100.0
    soc_log.append((t_end, soc_end))
    samples.append(Sample(t_end, power=0.0, soc=soc_end, price=prices.buy_at(t_end)))
    if not options.quiet:
        print(f"  EV: {'OK' if report.success else 'FAILED'} ({report.reason}), "
              f"{report.loops} charge loops", file=out)
    code = _finish(options, out, samples, soc_log, prices, arrival, max(departure, t_end),
                   meter.energy_in, meter.energy_out, soc_end, outage, meter.v2h_kwh)
    return code if report.success else 1


@dataclass
class _DayMeter:
    """The energy through the meter (kWh), each step at the power read at its start."""

    energy_in: float = 0.0
    energy_out: float = 0.0
    v2h_kwh: float = 0.0  # discharged while the grid was down
    last_t: float | None = None
    last_p: float = 0.0

    def read(self, t: float, power: float, in_outage: bool) -> None:
        if self.last_t is not None:
            kwh = self.last_p * (t - self.last_t) / 3.6e6
            if kwh >= 0:
                self.energy_in += kwh
            else:
                self.energy_out -= kwh
                if in_outage:
                    self.v2h_kwh -= kwh
        self.last_t, self.last_p = t, power


@dataclass
class _HomeEms:
    """The home energy manager the demo plays: a plan per slot from the SOC it sees, its
    setpoint to the station port, and the grid outage announced to it (V2H)."""

    port: SeccStationPort
    provider: PlanningScheduleProvider
    limits: EvseLimits
    options: DayOptions
    out: TextIO
    departure: float
    plan: Plan | None = None
    planned_slot: int | None = None
    in_outage: bool = False

    def steer(self, t: float, soc: float, now_outage: bool) -> None:
        if now_outage != self.in_outage:
            self._grid_changed(t, now_outage)
        if not self.in_outage:
            self._follow_plan(t, soc)

    def _grid_changed(self, t: float, outage: bool) -> None:
        self.in_outage = outage
        self.port.set_outage(outage, self.options.home_load_w if outage else None)
        self.plan = None
        if not self.options.quiet:
            what = ("DOWN: V2H supplies the house (station port, V2H runner)"
                    if outage else "back: re-planning")
            print(f"  {_clock(t)}  grid {what}", file=self.out, flush=True)

    def _follow_plan(self, t: float, soc: float) -> None:
        from evse._mqtt_api import CommandRejected

        slot = math.floor(t / self.options.policy.slot_s)
        if self.plan is None or slot != self.planned_slot:
            self.plan = self.provider.make_plan(
                now=t, departure=self.departure, soc=soc, target_soc=None, minimum_soc=None,
                ev_limits=None, evse_limits=self.limits, bpt=True)
            self.planned_slot = slot
            first = self.plan.slots[0] if self.plan.slots else None
            if first is not None and not self.options.quiet:
                print(f"  {_clock(t)}  SOC {soc:5.1f} %  {first.power_w / 1000:+6.1f}"
                      f" kW  buy {first.buy:.3f} sell {first.sell:.3f}  "
                      f"{first.reason}", file=self.out, flush=True)
        with contextlib.suppress(CommandRejected):  # not in the charge loop yet
            self.port.set_setpoint("1", setpoint_at(self.plan, t))

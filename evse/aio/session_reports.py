"""Session reports from the session event stream: the report record of an ended session
(samples with SOC and prices, the money summary: evse.energy.accounting) and `ReportWriter`,
which writes them (JSON + SVG, `evse._report`) in a worker thread, best effort: a report that
cannot be written is logged and never stops the charger."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from evse._report import ReportPaths, SessionRecord, write_report
from evse.aio.session_records import SessionSummary
from evse.energy.accounting import PriceLookup, session_money
from evse.energy.optimizer import Plan
from evse.energy.prices import PriceCurve
from evse.energy.provider import EnergyPolicy
from evse.energy.value import session_value

__all__ = ["ReportWriter", "price_lookup", "session_record"]

log = logging.getLogger(__name__)


def price_lookup(history: Sequence[tuple[float, PriceCurve]]) -> PriceLookup:
    """(buy, sell) at a time from the price curves in force since their times (sorted)."""

    def lookup(t: float) -> tuple[float, float]:
        curve = history[0][1]
        for since, c in history:
            if since <= t:
                curve = c
        return curve.buy_at(t), curve.sell_at(t)

    return lookup


def session_record(summary: SessionSummary, station_id: str, *,
                   soc_log: Sequence[tuple[float, float]],
                   price_history: Sequence[tuple[float, PriceCurve]], policy: EnergyPolicy,
                   id_token: str | None = None, plan: Plan | None = None,
                   outages: Sequence[Sequence[float]] = (),
                   max_charge_w: float = 0.0) -> SessionRecord:
    """The session's report record: samples with SOC and prices, the money summary, the wear
    (the planner's model) and the value against charging on arrival (evse.energy.value)."""
    record: SessionRecord = summary.to_report_record(station_id)
    grid = price_lookup(price_history)
    spans = [(o[0], o[1]) for o in outages]

    def lookup(t: float) -> tuple[float, float]:
        buy, sell = grid(t)  # energy the house drew from the car in an outage: not sold
        return (buy, 0.0) if any(a <= t < b for a, b in spans) else (buy, sell)

    def soc_at(t: float) -> float | None:
        value = None
        for ts, soc in soc_log:
            if ts > t + 0.5:
                break
            value = soc
        return value

    samples = []
    for s in record.samples:
        buy, sell = lookup(s.t)
        samples.append(dataclasses.replace(s, soc=soc_at(s.t), price=buy, sell_price=sell))
    currency = price_history[-1][1].currency
    money = session_money([(s.t, s.power) for s in record.samples if s.power is not None],
                          energy_in_kwh=record.energy_in_kwh,
                          energy_out_kwh=record.energy_out_kwh, prices=lookup,
                          currency=currency, degradation_cost=policy.flat_degradation_cost,
                          discharge_efficiency=policy.discharge_efficiency,
                          started_at=record.started_at, ended_at=record.ended_at)
    metadata = dict(record.metadata)
    metadata.update(id_token=id_token, soc_start=soc_log[0][1] if soc_log else None,
                    soc_end=soc_log[-1][1] if soc_log else None,
                    degradation_cost_per_kwh=policy.degradation_cost)
    capacity = policy.capacity_kwh
    wear = policy.wear_model(capacity)
    if wear is not None and soc_log:
        # the same wear model as the planner: cycles and calendar ageing of the SOC seen;
        # the C-rate from the metered power, not from SOC over time: the SIL's battery
        # runs faster than the wall clock the SOC samples are stamped with
        moving = [abs(s.power) for s in record.samples if s.power]
        crate = sum(moving) / len(moving) / 1000.0 / capacity if moving else 0.0
        cost = wear.trajectory_cost([t for t, _ in soc_log], [v for _, v in soc_log],
                                    crate=crate)
        money = dataclasses.replace(money, degradation=cost.total)
        metadata["wear"] = {"chemistry": wear.chemistry, "model": wear.tables.MODEL,
                            "cycle_cost": cost.cycle_cost,
                            "calendar_cost": cost.calendar_cost, "crate": cost.crate}
        value = session_value(
            currency=currency, prices=lookup,
            samples=[(s.t, s.power) for s in record.samples if s.power is not None],
            soc_log=list(soc_log), start=record.started_at, end=record.ended_at,
            energy_in_kwh=record.energy_in_kwh, energy_out_kwh=record.energy_out_kwh,
            wear=wear, max_charge_w=max_charge_w,
            charge_efficiency=policy.charge_efficiency, crate=crate)
        record = dataclasses.replace(record, value=value)
    if plan is not None:
        metadata["plan"] = {"target_soc": plan.target_soc, "reserve_soc": plan.reserve_soc,
                            "target_feasible": plan.target_feasible,
                            "forecast_net": plan.money.net,
                            "departure": plan.departure}
    return dataclasses.replace(record, samples=tuple(samples), money=money, metadata=metadata)


class ReportWriter:
    """Writes report records to `directory` in a worker thread (never on the event loop)."""

    def __init__(self, directory: Path | str | None, *, svg: bool = True,
                 on_report: Callable[[ReportPaths], None] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.svg = svg
        self.on_report = on_report
        self.paths: deque[ReportPaths] = deque(maxlen=100)  # the latest; the files stay
        self.last_record: SessionRecord | None = None
        self._pending: set[asyncio.Future[ReportPaths]] = set()

    def write(self, record: SessionRecord) -> None:
        self.last_record = record
        directory, svg = self.directory, self.svg
        if directory is None:
            return

        def write() -> ReportPaths:
            paths = write_report(record, directory, svg=svg)
            try:  # the owner's statements follow every report (best effort, like reports)
                from evse._statement import update_statements

                update_statements(directory)
            except Exception:
                log.exception("could not update the owner statements")
            return paths

        future = asyncio.get_running_loop().run_in_executor(None, write)
        self._pending.add(future)
        future.add_done_callback(self._done)

    async def flush(self, timeout: float = 10.0) -> list[ReportPaths]:
        """Wait for the reports being written; every ReportPaths written so far."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # A future leaves `_pending` in its done callback, which runs a loop turn after the
        # writer thread finished: wait for the callbacks too, not only for the futures.
        while self._pending and loop.time() < deadline:
            await asyncio.wait(list(self._pending), timeout=max(0.0, deadline - loop.time()))
            await asyncio.sleep(0)
        return list(self.paths)

    def _done(self, future: asyncio.Future[ReportPaths]) -> None:
        self._pending.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:  # reports are best effort: never stop the charger
            log.error("could not write the session report: %s", exc)
            return
        paths = future.result()
        self.paths.append(paths)
        log.info("session report: %s", paths.json)
        if self.on_report is not None:
            try:
                self.on_report(paths)
            except Exception:
                log.exception("on_report hook failed")

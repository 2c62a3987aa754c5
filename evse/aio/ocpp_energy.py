"""The CSMS's charging profiles as the energy policy's bound (docs/ocpp.md, arbitration).

`OcppSchedulePolicy` is an `evse.hooks.SchedulePolicy`: at ScheduleExchange it turns the
composite of the CSMS's profiles for the connector's EVSE into the schedules the EV gets
(charge power per interval, and for BPT the discharge power; a CentralSetpoint asking for
discharge becomes "charge 0, discharge |setpoint|", Idle "0 / 0"), each interval capped by the
charger's own limits and the EV's. Where no profile of the CSMS applies it answers None, and
the local energy policy (the configured schedule provider) plans as before.

At each ScheduleExchange it also sends NotifyEVChargingNeeds (the EV's limits, departure,
2.1: V2X parameters and control mode) and, when the schedules came from the CSMS's
profiles, NotifyEVChargingSchedule with what the EV was given (not queued: only while the
CSMS has accepted the station; a task of its own, so the EV never waits for it).

`OcppSetpoints` pushes the composite limit (charge and discharge limits, a CentralSetpoint)
to the connectors as their power bound (`SeccServer.set_power_bound`) whenever the profiles
change or a period boundary passes: it caps the running session at once, whatever its
protocol and control mode, and any local (MQTT) setpoint; it is withdrawn when no profile
applies any more (e.g. a Dynamic profile expired: dead-man), which also asks a Scheduled
-2 / -20 session to renegotiate, as does a new price schedule with unchanged limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from evse.aio.ocpp_client import OcppClient
from evse.aio.tasks import cancel_task
from evse.ocpp.ev_needs import charging_needs, ev_charging_schedule
from evse.ocpp.smart_charging import ChargingLimits
from evse.protocol.events import PowerBoundUpdated
from evse.protocol.limits import cap
from evse.protocol.schedules import (
    DEFAULT_DEPARTURE_S,
    PowerEntry,
    ScheduleRequest,
    Schedules,
    flat_schedules,
)

__all__ = ["OcppSchedulePolicy", "OcppSetpoints"]

log = logging.getLogger(__name__)


class OcppSchedulePolicy:
    def __init__(self, client: OcppClient, evse_ids: Mapping[str, int]) -> None:
        self.client = client
        self.evse_ids = dict(evse_ids)
        self._tasks: set[asyncio.Task[None]] = set()

    async def schedules(self, connector_id: str, request: ScheduleRequest
                        ) -> Schedules | None:
        evse_id = self.evse_ids.get(connector_id)
        if evse_id is None:
            return None
        result = self._schedules(evse_id, request)
        # tell the CSMS what the EV needs and what it was given, without delaying the EV
        task = asyncio.create_task(self._notify(evse_id, request, result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return result

    async def _notify(self, evse_id: int, request: ScheduleRequest,
                      result: Schedules | None) -> None:
        c = self.client
        if not c.accepted.is_set():
            return  # not queued: needs are only useful now
        version = "2.1" if c.subprotocol == "ocpp2.1" else "2.0.1"
        ev = request.ev_limits
        target_soc = request.target_soc if request.target_soc is not None else (
            ev.target_soc if ev else None)
        await c.call_now("NotifyEVChargingNeeds", charging_needs(
            evse_id, version, request.timestamp, bpt=request.bpt,
            departure_s=request.departure_time,
            ev_max_power=ev.max_charge_power if ev else request.evse_limits.max_charge_power,
            ev_max_current=ev.max_charge_current if ev else None,
            ev_max_voltage=ev.max_voltage if ev else None,
            ev_max_discharge_power=ev.max_discharge_power if ev else 0.0,
            target_soc=target_soc, dynamic=request.dynamic,
            energy_wh=(request.ev_target_energy_wh, request.ev_minimum_energy_wh,
                       request.ev_maximum_energy_wh)))
        if result is not None:
            periods, offset = [], 0
            dis = result.discharging or tuple(PowerEntry(e.duration, 0.0)
                                              for e in result.charging)
            for ch, d in zip(result.charging, dis, strict=False):
                periods.append((offset, ch.power, d.power))
                offset += ch.duration
            await c.call_now("NotifyEVChargingSchedule",
                             ev_charging_schedule(evse_id, version, request.timestamp,
                                                  periods))

    def _schedules(self, evse_id: int, request: ScheduleRequest) -> Schedules | None:
        horizon = float(max(1, request.departure_time or DEFAULT_DEPARTURE_S))
        # profiles are on Unix time (`timestamp`); the schedules on the SECC's clock (`now`)
        composite = self.client.profiles.composite(evse_id, request.timestamp, horizon)
        if all(lim == ChargingLimits() for _off, lim in composite):
            return None  # nothing from the CSMS: the local policy decides alone
        base = flat_schedules(request.now, request.departure_time, request.ev_limits,
                              request.evse_limits, request.bpt)
        ev = request.ev_limits
        max_charge = cap(request.evse_limits.max_charge_power,
                         ev.max_charge_power if ev else None)
        max_discharge = cap(request.evse_limits.max_discharge_power,
                            ev.max_discharge_power if ev else None) if request.bpt else 0.0
        charging, discharging = [], []
        for i, (offset, lim) in enumerate(composite):
            end = composite[i + 1][0] if i + 1 < len(composite) else horizon
            duration = max(1, round(end - offset))
            charge = max_charge if lim.max_charge_w is None else min(max_charge,
                                                                      lim.max_charge_w)
            discharge = max_discharge if lim.max_discharge_w is None else min(
                max_discharge, lim.max_discharge_w)
            if lim.setpoint_w is not None:  # CentralSetpoint: exactly this direction
                if lim.setpoint_w < 0:
                    charge, discharge = 0.0, min(discharge, -lim.setpoint_w)
                else:
                    charge, discharge = min(charge, lim.setpoint_w), 0.0
            charging.append(PowerEntry(duration, max(0.0, charge)))
            discharging.append(PowerEntry(duration, max(0.0, discharge)))
        # OCPP 2.1: the transaction profile's price schedule / sales tariff (and the eMSP's
        # signature) go to the EV as the CSMS gave them (evse.aio.ocpp_prices). `timestamp`
        # is whole seconds (TimeAnchor): the profile in force at the end of that second, so
        # a Relative TxProfile of a transaction that started within it counts
        price = self.client.profiles.price_at(evse_id, request.timestamp + 0.999)
        return Schedules(start=request.now, charging=tuple(charging),
                         discharging=tuple(discharging) if request.bpt else (),
                         price=base.price, csms_price=price)


class OcppSetpoints:
    """The CSMS's composite limit -> `set_bound(connector, PowerBoundUpdated)` of the
    connectors (`SeccServer.set_power_bound`): the charge and discharge limits and a
    CentralSetpoint, at every profile change and period boundary. The SECC's ChargerState
    applies it to the running session at once (limits in the charge loop, local setpoints;
    docs/ocpp.md "Arbitration") and to every later one. A profile change that changes the
    composite ahead or the price in force also asks the Scheduled -2 / -20 session to
    renegotiate its schedule. An empty bound (all None) withdraws it (e.g. a Dynamic profile
    expired: dead-man) and asks for renegotiation too (the local policy plans again)."""

    HORIZON_S = 3600.0

    def __init__(self, client: OcppClient, evse_ids: Mapping[str, int],
                 set_bound: Callable[[str, PowerBoundUpdated], Any],
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.evse_ids = dict(evse_ids)
        self._set = set_bound
        self._clock = clock
        self._sent: dict[str, PowerBoundUpdated] = {}
        # the composite and the price in force last announced
        self._ahead: dict[str, tuple[Any, ...]] = {}
        self._changed = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        client.on_profiles_changed(self._profiles_changed)

    def _profiles_changed(self) -> None:
        self._changed = True
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="ocpp-setpoints")
        return self._task

    async def stop(self) -> None:
        await cancel_task(self._task)

    def _composite_ahead(self, evse_id: int, now: float) -> tuple[Any, ...]:
        """The composite from now, in absolute times (the first entry: "now"), without the
        dead-man expiry: a Dynamic profile's update that only moves its expiry asks no
        renegotiation (the expiry itself does, when it withdraws the bound)."""
        comp = self.client.profiles.composite(evse_id, now, self.HORIZON_S, dead_man=False)
        return tuple((None if i == 0 else now + off, lim) for i, (off, lim) in enumerate(comp))

    def apply(self) -> float:
        """Push what applies now; returns when to look again."""
        now = self._clock()
        changed, self._changed = self._changed, False
        nxt = now + self.HORIZON_S
        for cid, evse_id in self.evse_ids.items():
            lim = self.client.profiles.limits_at(evse_id, now)
            bound = PowerBoundUpdated(lim.max_charge_w, lim.max_discharge_w, lim.setpoint_w)
            # a profile change that moved the composite ahead, or (2.1) changed the price
            # schedule in force with the limits unchanged, makes the EV's schedule stale:
            # renegotiate ([K16], renegotiation initiated by the CSMS: the new schedule and
            # price go out; NotifyEVChargingSchedule); a period boundary alone does not (the
            # schedule had it)
            ahead = (self._composite_ahead(evse_id, now),
                     self.client.profiles.price_at(evse_id, now))
            renegotiate = changed and cid in self._ahead and self._ahead[cid] != ahead
            self._ahead[cid] = ahead
            # a bound withdrawn by time (a Dynamic profile's dead-man expiry, a validity
            # end): the EV's schedule was the CSMS's; the local policy plans again
            prev = self._sent.get(cid, PowerBoundUpdated())
            if prev != PowerBoundUpdated() and bound == PowerBoundUpdated():
                renegotiate = True
            if prev != bound or renegotiate:
                self._sent[cid] = bound
                try:
                    self._set(cid, dataclasses.replace(bound, renegotiate=renegotiate))
                except Exception:
                    log.exception("connector %s: bound %s failed", cid, bound)
            nxt = min(nxt, self.client.profiles.next_change(evse_id, now, self.HORIZON_S))
        return nxt

    async def run(self) -> None:
        while True:
            self._wake.clear()
            delay = max(0.0, self.apply() - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

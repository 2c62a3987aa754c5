"""Embedding the charger in one's own asyncio application (docs/integration.md).

What an integrator writes: a meter part of their own composed with the other HAL parts
(`hal.compose`), an authorization hook, an event consumer, and the server embedded in their
own event loop. The simulated EV (from `simulators`, not part of the charger) plays the car
over loopback so that the example runs anywhere:

    python examples/integration_example.py

It prints the session's events and exits 0 when energy moved to the EV.
"""

from __future__ import annotations

import asyncio
import sys

import hal
from evse import events as se
from evse.aio.app import supply_limits
from evse.aio.secc_server import SeccServer, Station
from evse.hooks import AuthorizationRequest, Decision, Hooks
from evse.protocol.config import SeccConfig, ServiceId
from hal.backends.sim import SimBackend

# -- 1. a HAL part of one's own: the meter ------------------------------------------------------


class IntegratingMeter(hal.Meter):
    """A meter that integrates the power supply's measured output (stand-in for a real,
    calibrated meter read over Modbus or a vendor SDK). `poll(now)` is called by the composed
    backend on every HAL poll."""

    def __init__(self, power_supply: hal.PowerSupplyDC) -> None:
        self._supply = power_supply
        self._imported_wh = 0.0
        self._exported_wh = 0.0
        self._last: float | None = None

    @property
    def meter_id(self) -> str:
        return "MY-METER-0001"

    def poll(self, now: float) -> None:
        m = self._supply.measurement()
        if self._last is not None and now > self._last:
            wh = m.voltage * m.current * (now - self._last) / 3600.0
            if wh >= 0:
                self._imported_wh += wh
            else:
                self._exported_wh -= wh
        self._last = now

    def reading(self) -> hal.MeterReading:
        m = self._supply.measurement()
        return hal.MeterReading(self.meter_id, self._imported_wh, self._exported_wh,
                                m.voltage, m.current, m.timestamp)


# -- 2. a custom authorization hook -----------------------------------------------------------


class AllowList:
    """Grants the vehicles (EVCCIDs) on a list; a real one would ask the backend (CSMS)."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed

    async def authorize(self, request: AuthorizationRequest) -> Decision:
        await asyncio.sleep(0.05)  # a backend round trip; the SECC answers Ongoing meanwhile
        if request.evcc_id in self.allowed:
            return Decision(granted=True, id_token=request.evcc_id)
        return Decision(granted=False, reason=f"{request.evcc_id} is not on the allow list")


# -- 3. an event consumer ---------------------------------------------------------------------


async def consume(stream: se.Subscription, log: list[se.SessionEvent]) -> None:
    async for event in stream:
        log.append(event)
        match event:
            case se.SessionStarted(evcc_id=evcc_id, protocol=protocol):
                print(f"[{event.connector_id}] session started: {evcc_id} ({protocol})")
            case se.AuthorizationDecided(granted=granted):
                print(f"[{event.connector_id}] authorization {'granted' if granted else 'denied'}")
            case se.Measurement(power_w=power, energy_in_wh=energy):
                print(f"[{event.connector_id}] {power / 1000:.1f} kW, {energy or 0:.2f} Wh")
            case se.EventsDropped(count=n):
                print(f"[{event.connector_id}] (too slow: {n} measurements dropped)")
            case se.SessionEnded(reason=reason, summary=summary):
                print(f"[{event.connector_id}] session ended: {reason}, "
                      f"{summary.energy_in_wh:.2f} Wh to the EV")
                return


# -- 4. the server, embedded in one's own asyncio application ---------------------------------


async def main() -> float:
    """Run one simulated DC session; return the energy (Wh) the summary says moved."""
    from simulators.ev import BatteryLink, get_scenario  # the car: simulation only
    from simulators.ev.client import run_session

    sim = SimBackend()  # the SIL rig: board, power stage, isolation monitor, EV battery
    backend = hal.compose(board=sim, power_supply=sim, isolation_monitor=sim,
                          meter=IntegratingMeter(sim.power_supply))
    station = Station.from_backends([backend], speedup=10.0)  # HAL physics 10x (a demo)
    config = SeccConfig(
        evse_id="DE*EXA*E0000001", services=(ServiceId.DC,), limits=supply_limits(backend),
        allow_plain_tcp_iso20=True,  # loopback demo only: -20 wants TLS 1.3
    )
    hooks = Hooks(authorizer=AllowList({"WEVSESTACKSIM0001"}))
    events: list[se.SessionEvent] = []
    async with SeccServer(config, station, address="127.0.0.1", port=0, hooks=hooks) as server:
        consumer = asyncio.create_task(consume(station.events(), events))
        assert server.port is not None
        scenario = get_scenario("dc").replace(loop_interval=0.05, max_loops=40, speedup=10.0)
        battery = BatteryLink(sim.ev_battery, shared=True,
                              on_contactors=lambda closed: setattr(sim, "ev_contactor_closed",
                                                                   closed))
        report = await run_session(scenario, host="127.0.0.1", port=server.port,
                                   battery=battery)
        await asyncio.wait_for(consumer, 10.0)
    print(report.summary())
    ended = events[-1]
    assert isinstance(ended, se.SessionEnded)
    if not report.success:
        raise SystemExit(f"the session failed: {report.reason}")
    energy: float = ended.summary.energy_in_wh
    return energy


if __name__ == "__main__":
    wh = asyncio.run(main())
    sys.exit(0 if wh > 0 else 1)

"""`evse demo` starts with plug-in and SLAC (the demo calls this in a few lines).

    link = await plug_in(server, connector, out)   # pilot B -> 5 % -> SLAC match -> C
    ...                                            # the V2G session (loopback)
    await link.unplug()                            # A: session over, safe state, no PWM
    rows = link.summary_rows()

The charger's `ConnectorWiring` (evse/aio/connector_link.py) runs on the demo's connector
with the simulated modem; the simulated car (simulators/slac_ev.py) pairs with it over a veth
pair (AF_PACKET raw sockets on both ends, created and removed here) when run as root, over
the in-process link otherwise; the summary says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
import uuid
from typing import Any, TextIO

from evse.aio.connector_link import ConnectorWiring, LinkSpec
from evse.aio.slac_link import FrameTransport, InProcessMedium, RawSocketTransport
from hal.interfaces import PilotState
from simulators.slac_ev import EvSlacBehaviour, ev_slac

log = logging.getLogger("evse.demo")

EVSE_MAC = bytes.fromhex("020000000e5e")
CAR_MAC = bytes.fromhex("0a0000000ca1")
# Loose SLAC timings: the demo shares the machine with everything else.
LOOSE: dict[str, Any] = dict(match_response=1.0, match_sequence=2.0, time_out_units=30)
WAIT = 30.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class VethLink:
    """A veth pair in this namespace: the charger's modem NIC and the car's (root only)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.evse_if, self.car_if = f"slace{tag}", f"slacc{tag}"
        _ip("link", "add", self.evse_if, "type", "veth", "peer", "name", self.car_if)
        try:
            for name in (self.evse_if, self.car_if):
                _ip("link", "set", name, "up")
        except Exception:
            self.remove()
            raise

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.evse_if], capture_output=True, timeout=30)


class DemoLink:
    def __init__(self, wiring: ConnectorWiring, kind: str, car: FrameTransport,
                 veth: VethLink | None) -> None:
        self.wiring = wiring
        self.kind = kind
        self.car = car
        self.veth = veth
        self.to_duty_ms = 0.0
        self.to_match_ms = 0.0
        self.safe_ms: float | None = None

    @property
    def board(self) -> Any:
        return self.wiring.connector.backend.board

    async def plug(self, out: TextIO) -> None:
        t0 = time.monotonic()
        self.board.set_ev_pilot_state(PilotState.B)
        await _until(lambda: self.board.pwm_duty == 5.0, "the 5 % duty")
        self.to_duty_ms = (time.monotonic() - t0) * 1e3
        await ev_slac(self.car, EvSlacBehaviour().scaled(5.0))
        await _until(lambda: self.wiring.session_allowed, "the SLAC match")
        self.to_match_ms = (time.monotonic() - t0) * 1e3
        self.board.set_ev_pilot_state(PilotState.C)  # the car is ready for energy
        print(f"  plug-in: pilot B -> 5 % in {self.to_duty_ms:.0f} ms, SLAC matched after "
              f"{self.to_match_ms:.0f} ms, {self.kind}; pilot C", file=out, flush=True)

    async def unplug(self) -> None:
        """Pilot A: the session is over, the connector goes to the safe state, no PWM."""
        try:
            t0 = time.monotonic()
            self.board.set_ev_pilot_state(PilotState.A)
            ctl = self.wiring.connector.controller
            with contextlib.suppress(AssertionError):
                await _until(lambda: self.board.pwm_duty == 100.0 and ctl.safe_state_reached,
                             "the safe state after the unplug", 5.0)
                self.safe_ms = (time.monotonic() - t0) * 1e3
        finally:
            await self.wiring.close()
            self.car.close()
            if self.veth is not None:
                self.veth.remove()

    def summary_rows(self) -> list[tuple[str, str]]:
        times = self.wiring.times
        story = (f"plugged, 5 % after {self.to_duty_ms:.0f} ms, SLAC matched after "
                 f"{self.to_match_ms:.0f} ms, session, unplugged"
                 + (f" (safe state in {self.safe_ms:.0f} ms)" if self.safe_ms is not None
                    else " (safe state not confirmed)"))
        rows = [("link", f"SLAC {self.kind}"), ("pilot", story)]
        if times.plugged_at is not None and times.unplugged_at is not None:
            rows.append(("plugged for", f"{times.unplugged_at - times.plugged_at:.1f} s"))
        return rows


async def _until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"demo: timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def plug_in(server: Any, connector: Any, out: TextIO) -> DemoLink:
    """Wire the connector's pilot and SLAC, plug the car in and pair; the session follows."""
    veth: VethLink | None = None
    if os.geteuid() == 0:
        try:
            veth = VethLink()
            evse: FrameTransport = RawSocketTransport(veth.evse_if)
            car: FrameTransport = RawSocketTransport(veth.car_if)
            kind = f"over a veth pair ({veth.evse_if} - {veth.car_if}, AF_PACKET raw sockets)"
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("no veth pair (%s): the in-process link instead", exc)
            if veth is not None:
                veth.remove()
                veth = None
    if veth is None:
        medium = InProcessMedium()
        evse, car = medium.port(EVSE_MAC), medium.port(CAR_MAC)
        kind = "over the in-process link (not root: no veth pair)"
    wiring = ConnectorWiring(connector, server, LinkSpec(modem="simulated", slac=LOOSE,
                                                         poll_interval=0.02),
                             transport=evse)
    await wiring.start()
    link = DemoLink(wiring, kind, car, veth)
    try:
        await link.plug(out)
    except BaseException:
        await link.unplug()
        raise
    return link

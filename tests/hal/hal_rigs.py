"""Test rigs: a hardware backend and its simulated hardware, clocked together.

Each rig is itself a HalBackend whose parts are the real backend's parts, and whose
`poll(now)` runs one round trip: the backend polls (sends), the simulated device steps
on the same `now` (answers), the backend polls again (receives). So tests run on a fake
clock, single-threaded. Over a pty the bytes still cross the kernel: the rig waits, with
a short bounded select, only when a side has just written something.
"""

from __future__ import annotations

import inspect
import itertools
import select
from collections.abc import Callable
from typing import Any

import can

from hal.backends.can import CanBackend
from hal.backends.serial import SerialBackend
from hal.backends.sim import SimBackend
from hal.interfaces import Board, HalBackend, IsolationMonitor, Meter, PowerSupplyDC
from hal.parts import compose
from hal.registry import CompositeBackend, create_backend_from_spec
from hal.sim.can_modules import ModuleRack
from simulators.mcu import PtyPair, SimulatedMcu

_channels = itertools.count()
PTY_WAIT = 0.05  # bound of one wait for bytes known to be in flight


def unique_channel() -> str:
    return f"test-can-{next(_channels)}"


class Rig(HalBackend):
    name = "rig"
    backend: HalBackend

    @property
    def power_supply(self) -> PowerSupplyDC:
        return self.backend.power_supply

    @property
    def board(self) -> Board:
        return self.backend.board

    @property
    def isolation_monitor(self) -> IsolationMonitor:
        return self.backend.isolation_monitor

    @property
    def meter(self) -> Meter:
        return self.backend.meter

    def run(
        self, seconds: float, dt: float = 0.02, until: Callable[[], bool] | None = None
    ) -> float:
        """Poll every dt up to `seconds`; stop once `until()` holds. Returns the time used."""
        start = self.t
        end = start + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + dt)
            self.poll(self.t)
            if until is not None and until():
                break
        return self.t - start

    t = 0.0


def _split(cls: type, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options `cls` takes, the rest): the rest configure the explicit sim parts."""
    own = inspect.signature(cls).parameters
    return ({k: v for k, v in options.items() if k in own},
            {k: v for k, v in options.items() if k not in own})


class SerialRig(Rig):
    """`serial` backend on a pty (the board); a SimulatedMcu on the master side; the power
    supply, isolation monitor and meter from an explicit `sim`, whose contactor follows the
    MCU's real contacts, so current flows only through them."""

    def __init__(self, mcu_options: dict[str, Any] | None = None, **options: Any) -> None:
        self.pty = PtyPair()
        self.mcu = SimulatedMcu(self.pty.master_fd, **(mcu_options or {}))
        serial_options, sim_options = _split(SerialBackend, options)
        sim_options.setdefault("contactor_switch_time", 0.0)
        self.serial = SerialBackend(self.pty.port, **serial_options)
        self.sim = SimBackend(**sim_options)
        self.backend = compose(board=self.serial, power_supply=self.sim,
                               isolation_monitor=self.sim, meter=self.sim,
                               allow_simulated_parts=True)

    def poll(self, now: float) -> None:
        self.t = now
        self._follow()
        sent = self.serial.link.stats.frames_sent
        self.backend.poll(now)
        wait = PTY_WAIT if self.serial.link.stats.frames_sent != sent else 0.0
        mcu_sent = self.mcu.stats.frames_sent
        self.mcu.step(now, wait=wait)
        if self.mcu.stats.frames_sent != mcu_sent and not self.mcu.silent:
            select.select([self.serial.fileno()], [], [], PTY_WAIT)
        self._follow()
        self.backend.poll(now)

    def _follow(self) -> None:
        self.sim.contactor.command(self.mcu.contactors_closed)

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            self.pty.close()


class CanRig(Rig):
    """`can` backend and a ModuleRack on one virtual channel; the rack's output reaches
    the battery while the board's contactors are closed."""

    def __init__(
        self,
        addresses: tuple[int, ...] = (0, 1),
        rack_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        channel = unique_channel()
        can_options, sim_options = _split(CanBackend, options)
        self.can = CanBackend(
            interface="virtual", channel=channel, module_addresses=addresses, **can_options
        )
        self.sim = SimBackend(**sim_options)
        self.backend = compose(board=self.sim, power_supply=self.can,
                               isolation_monitor=self.sim, meter=self.sim,
                               allow_simulated_parts=True)
        self.rack_bus = can.Bus(interface="virtual", channel=channel)
        self.rack = ModuleRack(
            self.rack_bus, addresses, connected=self._connected, **(rack_options or {})
        )
        self.ev_contactor_closed = True

    def _connected(self) -> bool:
        return self.ev_contactor_closed and self.backend.board.contactors_closed

    def poll(self, now: float) -> None:
        self.t = now
        self.backend.poll(now)
        self.rack.step(now)
        self.backend.poll(now)

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            self.rack_bus.shutdown()


class ComboRig(Rig):
    """serial + can composite from a spec string: MCU on a pty, modules on a virtual bus;
    the modules reach the battery through the MCU's real contacts."""

    def __init__(
        self,
        addresses: tuple[int, ...] = (0, 1, 2),
        mcu_options: dict[str, Any] | None = None,
        rack_options: dict[str, Any] | None = None,
        can_options: dict[str, Any] | None = None,
    ) -> None:
        self.pty = PtyPair()
        self.mcu = SimulatedMcu(self.pty.master_fd, **(mcu_options or {}))
        channel = unique_channel()
        composite = create_backend_from_spec(
            f"serial:{self.pty.port},can:virtual:{channel},sim",
            {"can": {"module_addresses": list(addresses), **(can_options or {})}},
            allow_simulated_parts=True,
        )
        assert isinstance(composite, CompositeBackend)
        self.backend = composite
        serial = composite.sources["board"]
        can_backend = composite.sources["power_supply"]
        assert isinstance(serial, SerialBackend) and isinstance(can_backend, CanBackend)
        self.serial, self.can = serial, can_backend
        self.rack_bus = can.Bus(interface="virtual", channel=channel)
        self.rack = ModuleRack(
            self.rack_bus, addresses, connected=self._connected, **(rack_options or {})
        )
        self.ev_contactor_closed = True

    def _connected(self) -> bool:
        return self.ev_contactor_closed and self.mcu.contactors_closed

    def poll(self, now: float) -> None:
        self.t = now
        sent = self.serial.link.stats.frames_sent
        self.backend.poll(now)
        wait = PTY_WAIT if self.serial.link.stats.frames_sent != sent else 0.0
        mcu_sent = self.mcu.stats.frames_sent
        self.mcu.step(now, wait=wait)
        self.rack.step(now)
        if self.mcu.stats.frames_sent != mcu_sent and not self.mcu.silent:
            select.select([self.serial.fileno()], [], [], PTY_WAIT)
        self.backend.poll(now)

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            self.rack_bus.shutdown()
            self.pty.close()


class Clocked:
    """Drives any HalBackend (e.g. a SafetySupervisor around a rig) on a fake clock,
    stepping the rig's simulated devices through the rig's own poll."""

    def __init__(self, backend: HalBackend, t: float = 0.0) -> None:
        self.backend = backend
        self.t = t

    def run(
        self, seconds: float, dt: float = 0.02, until: Callable[[], bool] | None = None
    ) -> float:
        start, end = self.t, self.t + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + dt)
            self.backend.poll(self.t)
            if until is not None and until():
                break
        return self.t - start

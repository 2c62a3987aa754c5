"""Simulated bidirectional DC power modules answering docs/can_protocol.md on a CAN bus.

`ModuleRack` holds several modules whose outputs are in parallel on one DC bus, behind
which sits the EV battery (`hal.sim.battery.EvBattery`) while `connected` holds (the
contactors). It shares one python-can bus (normally interface="virtual", the same channel
as the backend) and is clocked: `step(now)` answers what arrived and advances the physics.
`RackThread` runs it on the real clock.

Physics per module: a current source that ramps toward its share (`current_ramp` A/s up,
reductions at once), within its voltage limit (charge) or above its cut-off voltage
(discharge); with the battery disconnected the output voltage follows the highest charge
setpoint at `voltage_ramp` V/s, or bleeds down. A module that hears nothing from the
controller for `comm_timeout` switches off (CAN_TIMEOUT).

Fault injection: `drop_out(address)` (silent and dead: no frames, no output),
`set_fault(address, bits)` (answers, reports the fault, output off), `restore(address)`,
`mute_outputs` (every module keeps answering READ_STATUS and commands but no longer
READ_OUTPUT: the host's measurement goes stale while the modules look alive).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import can

from hal.backends.can.protocol import (
    BROADCAST,
    CONTROLLER,
    DEVICE_GROUP,
    DEVICE_MODULE,
    Command,
    Direction,
    ErrorCode,
    FrameId,
    MalformedFrame,
    ModuleStatus,
    StatusBits,
    pack_output,
    unpack_milli_pair,
)
from hal.sim.battery import EvBattery

__all__ = ["ModuleRack", "RackThread", "SimModule"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SimModule:
    address: int
    max_voltage: float = 1000.0
    min_voltage: float = 150.0
    max_charge_current: float = 50.0
    max_discharge_current: float = 50.0
    on: bool = False
    direction: Direction = Direction.CHARGE
    voltage_setpoint: float = 0.0
    current_setpoint: float = 0.0
    cutoff_voltage: float = 0.0
    discharge_setpoint: float = 0.0
    current: float = 0.0  # signed: negative while discharging
    temperature_c: int = 35
    fault_bits: StatusBits = StatusBits(0)
    dropped: bool = False
    can_timeout: bool = False
    last_heard: float | None = None
    frames_received: int = 0
    commands: list[tuple[float, Command, bytes]] = field(default_factory=list)

    @property
    def output_enabled(self) -> bool:
        return self.on and not self.dropped and not self.fault_bits and not self.can_timeout

    def status(self) -> ModuleStatus:
        bits = self.fault_bits
        if bits:
            bits |= StatusBits.FAULT
        if not self.output_enabled:
            bits |= StatusBits.OUTPUT_OFF
        if self.direction is Direction.DISCHARGE and self.output_enabled:
            bits |= StatusBits.DISCHARGING
        if self.can_timeout:
            bits |= StatusBits.CAN_TIMEOUT
        return ModuleStatus(self.direction, self.on, self.temperature_c, bits)


class ModuleRack:
    def __init__(
        self,
        bus: can.BusABC,
        addresses: Sequence[int] = (0, 1),
        *,
        battery: EvBattery | None = None,
        connected: bool | Callable[[], bool] = True,
        current_ramp: float = 500.0,
        voltage_ramp: float = 1000.0,
        bleed_rate: float = 500.0,
        comm_timeout: float = 1.0,
        controller_address: int = CONTROLLER,
        max_charge_current: float = 50.0,
        max_discharge_current: float = 50.0,
    ) -> None:
        self.bus = bus
        self.modules = {
            a: SimModule(
                a,
                max_charge_current=max_charge_current,
                max_discharge_current=max_discharge_current,
            )
            for a in addresses
        }
        self.battery = battery if battery is not None else EvBattery(soc=0.5)
        self._connected = connected
        self.current_ramp = current_ramp
        self.voltage_ramp = voltage_ramp
        self.bleed_rate = bleed_rate
        self.comm_timeout = comm_timeout
        self.controller_address = controller_address
        self.voltage = 0.0  # the shared output node
        self.now: float | None = None
        self.lock = threading.RLock()
        self.frames_sent = 0
        self.mute_outputs = False
        self.mute_status: set[int] = set()  # modules that stop answering READ_STATUS

    @property
    def connected(self) -> bool:
        c = self._connected
        return bool(c() if callable(c) else c)

    @connected.setter
    def connected(self, value: bool | Callable[[], bool]) -> None:
        self._connected = value

    @property
    def total_current(self) -> float:
        return sum(m.current for m in self.modules.values())

    # ---- fault injection -----------------------------------------------------------------

    def drop_out(self, address: int) -> None:
        with self.lock:
            m = self.modules[address]
            m.dropped = True
            m.current = 0.0

    def set_fault(self, address: int, bits: StatusBits = StatusBits.OVER_TEMPERATURE) -> None:
        with self.lock:
            m = self.modules[address]
            m.fault_bits = bits
            m.current = 0.0

    def restore(self, address: int) -> None:
        with self.lock:
            m = self.modules[address]
            m.dropped = False
            m.fault_bits = StatusBits(0)

    # ---- the loop ------------------------------------------------------------------------

    def step(self, now: float, wait: float = 0.0) -> None:
        with self.lock:
            dt = 0.0 if self.now is None else max(0.0, now - self.now)
            self.now = max(now, self.now or now)
            self._receive(now, wait)
            self._watchdogs(now)
            self._physics(dt)

    def _receive(self, now: float, wait: float) -> None:
        timeout = wait
        for _ in range(1024):
            msg = self.bus.recv(timeout=timeout)
            timeout = 0.0
            if msg is None:
                return
            if not msg.is_extended_id or msg.is_error_frame or msg.is_remote_frame:
                continue
            try:
                fid = FrameId.decode(msg.arbitration_id)
            except MalformedFrame:
                continue
            if fid.source != self.controller_address or fid.device not in (
                DEVICE_MODULE,
                DEVICE_GROUP,
            ):
                continue
            targets = (
                list(self.modules.values())
                if fid.destination == BROADCAST
                else [self.modules[fid.destination]]
                if fid.destination in self.modules
                else []
            )
            for m in targets:
                if m.dropped:
                    continue
                m.last_heard = now
                m.frames_received += 1
                self._answer(now, m, fid, bytes(msg.data))

    def _answer(self, now: float, m: SimModule, fid: FrameId, data: bytes) -> None:
        try:
            command = Command(fid.command)
        except ValueError:
            self._reply(m, fid.command, ErrorCode.COMMAND_INVALID, data)
            return
        if command is Command.READ_OUTPUT:
            if self.mute_outputs:
                return
            self._reply(m, command, ErrorCode.NORMAL, pack_output(self.voltage, m.current))
            return
        if command is Command.READ_STATUS:
            if m.address in self.mute_status:
                return
            self._reply(m, command, ErrorCode.NORMAL, m.status().pack())
            return
        m.commands.append((now, command, data))
        error = self._execute(m, command, data)
        self._reply(m, command, error, data)

    def _execute(self, m: SimModule, command: Command, data: bytes) -> ErrorCode:
        if len(data) != 8:
            return ErrorCode.DATA_INVALID
        if command in (Command.SET_ON_OFF, Command.SET_DIRECTION):
            return self._switch(m, command, data[0])
        if command in (Command.SET_OUTPUT, Command.SET_DISCHARGE):
            try:
                return self._set_point(m, command, *unpack_milli_pair(data))
            except MalformedFrame:
                return ErrorCode.DATA_INVALID
        return ErrorCode.COMMAND_INVALID

    @staticmethod
    def _switch(m: SimModule, command: Command, value: int) -> ErrorCode:
        """On/off (0 is on) or the direction; the current stops on off and on a reversal."""
        if value > 1:
            return ErrorCode.DATA_INVALID
        if command is Command.SET_ON_OFF:
            m.on = value == 0
            if m.on:
                m.can_timeout = False
            else:
                m.current = 0.0
            return ErrorCode.NORMAL
        direction = Direction(value)
        if direction is not m.direction:
            m.current = 0.0  # the bridge stops before it reverses
        m.direction = direction
        return ErrorCode.NORMAL

    @staticmethod
    def _set_point(m: SimModule, command: Command, volts: float, amps: float) -> ErrorCode:
        """The charge setpoint or the discharge one (cutoff voltage, current), in rating."""
        if command is Command.SET_OUTPUT:
            if volts > m.max_voltage or amps > m.max_charge_current + 1e-6:
                return ErrorCode.DATA_INVALID
            m.voltage_setpoint, m.current_setpoint = volts, amps
            return ErrorCode.NORMAL
        if volts > m.max_voltage or amps > m.max_discharge_current + 1e-6:
            return ErrorCode.DATA_INVALID
        m.cutoff_voltage, m.discharge_setpoint = volts, amps
        return ErrorCode.NORMAL

    def _reply(self, m: SimModule, command: int, error: ErrorCode, data: bytes) -> None:
        fid = FrameId(int(error), DEVICE_MODULE, command, self.controller_address, m.address)
        msg = can.Message(arbitration_id=fid.encode(), is_extended_id=True, data=data)
        try:
            self.bus.send(msg, timeout=0.1)
            self.frames_sent += 1
        except can.CanError as exc:
            log.debug("module %d could not send: %s", m.address, exc)

    def _watchdogs(self, now: float) -> None:
        for m in self.modules.values():
            silent = m.last_heard is not None and now - m.last_heard > self.comm_timeout
            if m.on and silent and not m.can_timeout:
                m.can_timeout = True
                m.current = 0.0

    def _physics(self, dt: float) -> None:
        active = [m for m in self.modules.values() if m.output_enabled]
        for m in self.modules.values():
            if not m.output_enabled:
                m.current = 0.0
        battery = self.battery
        if self.connected:
            ocv, r = battery.ocv, battery.internal_resistance_ohm
            n_charge = sum(1 for m in active if m.direction is Direction.CHARGE) or 1
            n_dis = sum(1 for m in active if m.direction is Direction.DISCHARGE) or 1
            for m in active:
                if m.direction is Direction.CHARGE:
                    by_voltage = (m.voltage_setpoint - ocv) / r / n_charge if r > 0 else math.inf
                    target = max(0.0, min(m.current_setpoint, by_voltage))
                else:
                    by_voltage = (ocv - m.cutoff_voltage) / r / n_dis if r > 0 else math.inf
                    target = -max(0.0, min(m.discharge_setpoint, by_voltage))
                m.current = _ramp(m.current, target, self.current_ramp * dt)
            total = self.total_current
            self.voltage = ocv + total * r
            battery.step(total, dt)
        else:
            for m in active:
                m.current = 0.0
            targets = [m.voltage_setpoint for m in active if m.direction is Direction.CHARGE]
            if targets:
                self.voltage = _toward(self.voltage, max(targets), self.voltage_ramp * dt)
            else:
                self.voltage = _toward(self.voltage, 0.0, self.bleed_rate * dt)
            battery.step(0.0, dt)


def _toward(value: float, target: float, max_delta: float) -> float:
    if abs(target - value) <= max_delta:
        return target
    return value + math.copysign(max_delta, target - value)


def _ramp(present: float, target: float, max_delta: float) -> float:
    same_side = present * target > 0
    if same_side and abs(target) <= abs(present):
        return target  # reductions are immediate
    return _toward(present if same_side else 0.0, target, max_delta)


class RackThread:
    """Runs a ModuleRack on the real (monotonic) clock until `stop()`."""

    def __init__(self, rack: ModuleRack, wait: float = 0.002) -> None:
        self.rack = rack
        self.wait = wait
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-can-rack", daemon=True)

    def start(self) -> RackThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.rack.step(time.monotonic(), wait=self.wait)
            except Exception:
                log.exception("simulated module rack crashed")
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

"""Several bidirectional DC modules on one CAN bus as one `PowerSupplyDC`.

The modules' outputs are in parallel. The host shares the setpoint current equally among
the *usable* modules (reporting, no fault bit), each capped at its own rating, and
reads every module's output and status by broadcast requests each `status_interval`.

A module is lost when no fresh READ_STATUS answer came for `module_timeout` (other frames,
e.g. its output readings, do not make its status fresh: a fault bit must not hide in a
status that stopped coming), or faulted when its status carries a fault bit. Then the
capabilities shrink to what the remaining modules can do, the present setpoint is
re-shared among them (capped: the effective current may fall below the setpoint), the
module is told to switch off (in case it still hears) and an event is recorded: `degraded`
turns True. With no usable module left, `fault` is set, which a supervisor treats as a
trip. A module that answers again without a fault is *held* off: the host never switches
it on by itself; it rejoins when control asks for power again from OFF (`set_mode`) or
acknowledges the faults for a new session (`acknowledge_faults`).

Like every HAL backend this is synchronous: `poll(now)` drains the receive queue without
blocking and sends what is due; commands go out at once from the `_apply_*` hooks.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import can

from hal.backends.can.protocol import (
    BROADCAST,
    CONTROLLER,
    DEVICE_MODULE,
    FAULT_BITS,
    MAX_MODULE_ADDRESS,
    ZERO,
    Command,
    Direction,
    ErrorCode,
    FrameId,
    MalformedFrame,
    ModuleStatus,
    StatusBits,
    pack_direction,
    pack_milli_pair,
    pack_on_off,
    unpack_output,
)
from hal.interfaces import (
    EmergencyStopActive,
    HalError,
    Measurement,
    PowerSupplyCapabilities,
    PowerSupplyDC,
    PowerSupplyMode,
)

log = logging.getLogger(__name__)

_CHARGE_MODES = (PowerSupplyMode.EXPORT, PowerSupplyMode.PRECHARGE, PowerSupplyMode.CABLECHECK)


@dataclass(frozen=True, slots=True)
class ModuleRating:
    """What one module can do (currents and powers are magnitudes)."""

    min_voltage: float = 150.0
    max_voltage: float = 1000.0
    max_charge_current: float = 50.0
    max_charge_power: float = 30_000.0
    max_discharge_current: float = 50.0
    max_discharge_power: float = 30_000.0


class ModuleHealth(StrEnum):
    UNKNOWN = "unknown"  # not heard yet, still inside the start-up grace time
    OK = "ok"
    LOST = "lost"  # silent for longer than module_timeout
    FAULT = "fault"  # reports a fault bit


@dataclass(slots=True)
class ModuleState:
    address: int
    health: ModuleHealth = ModuleHealth.UNKNOWN
    last_seen: float | None = None
    status_time: float | None = None  # the last READ_STATUS answer
    output_time: float | None = None
    voltage: float = 0.0
    current: float = 0.0
    status: ModuleStatus | None = None
    share: float = 0.0  # the current magnitude this module was last told to carry
    replies: int = 0
    error_replies: int = 0
    held: bool = False  # lost or faulted since control last asked for power: stays off

    @property
    def usable(self) -> bool:
        return self.health in (ModuleHealth.OK, ModuleHealth.UNKNOWN) and not self.held


@dataclass(frozen=True, slots=True)
class SupplyEvent:
    time: float
    kind: str  # "module_lost", "module_fault", "module_recovered", "module_released",
    #            "derated", "all_lost"
    module: int | None
    text: str


@dataclass(slots=True)
class CanStats:
    frames_sent: int = 0
    frames_received: int = 0
    send_errors: int = 0
    receive_errors: int = 0
    malformed: int = 0
    foreign: int = 0  # not from one of our modules to us
    error_replies: int = 0
    events: int = 0


@dataclass(slots=True)
class _Desired:
    mode: PowerSupplyMode = PowerSupplyMode.OFF
    volts: float = 0.0
    amps: float = 0.0
    dirty: bool = True


class CanPowerSupply(PowerSupplyDC):
    def __init__(
        self,
        bus: can.BusABC,
        module_addresses: Sequence[int] = (0, 1),
        *,
        rating: ModuleRating | None = None,
        controller_address: int = CONTROLLER,
        status_interval: float = 0.1,
        module_timeout: float = 0.5,
        refresh_interval: float = 1.0,
        interlock: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        addresses = list(module_addresses)
        if not addresses or len(set(addresses)) != len(addresses):
            raise ValueError("module_addresses must be a non-empty list without duplicates")
        if any(not 0 <= a <= MAX_MODULE_ADDRESS for a in addresses):
            raise ValueError(f"module addresses must be 0..{MAX_MODULE_ADDRESS}")
        if not 0 < status_interval < module_timeout:
            raise ValueError("need 0 < status_interval < module_timeout")
        self.bus = bus
        self.rating = rating if rating is not None else ModuleRating()
        self.controller_address = controller_address
        self.status_interval = status_interval
        self.module_timeout = module_timeout
        self.refresh_interval = refresh_interval
        self.interlock = interlock
        self.modules: dict[int, ModuleState] = {a: ModuleState(a) for a in addresses}
        self.stats = CanStats()
        self.events: deque[SupplyEvent] = deque(maxlen=256)
        self._desired = _Desired()
        self._now = 0.0
        self._started: float | None = None
        self._last_read: float | None = None
        self._last_refresh: float | None = None
        self._last_measurement = Measurement(0.0, 0.0, -math.inf)
        self._fault: str | None = None
        self._derated = False
        self._log_counts: dict[str, int] = {}

    # ---- PowerSupplyDC ---------------------------------------------------------------------

    @property
    def usable_modules(self) -> list[int]:
        return [a for a, m in self.modules.items() if m.usable]

    @property
    def capabilities(self) -> PowerSupplyCapabilities:
        """The sum over the usable modules (it shrinks when one is lost)."""
        n, r = len(self.usable_modules), self.rating
        return PowerSupplyCapabilities(
            bidirectional=True,
            min_voltage=r.min_voltage,
            max_voltage=r.max_voltage,
            max_charge_current=n * r.max_charge_current,
            max_charge_power=n * r.max_charge_power,
            max_discharge_current=n * r.max_discharge_current,
            max_discharge_power=n * r.max_discharge_power,
        )

    def measurement(self) -> Measurement:
        """Mean voltage and summed current of the modules that still answer (healthy or
        faulted); the timestamp is the oldest of their latest readings, so one lagging
        module makes the whole reading stale. A lost module's output is unknown: it is
        left out (and was told to switch off)."""
        reporting = [
            m
            for m in self.modules.values()
            if m.health in (ModuleHealth.OK, ModuleHealth.FAULT) and m.output_time is not None
        ]
        if reporting:
            times = [m.output_time for m in reporting if m.output_time is not None]
            self._last_measurement = Measurement(
                sum(m.voltage for m in reporting) / len(reporting),
                sum(m.current for m in reporting),
                min(times),
            )
        return self._last_measurement

    @property
    def fault(self) -> str | None:
        return self._fault

    @property
    def degraded(self) -> bool:
        """Fewer modules than configured are usable (or the setpoint had to be capped)."""
        return len(self.usable_modules) < len(self.modules) or self._derated

    @property
    def effective_current(self) -> float:
        """The signed total current the modules were actually told to carry."""
        total = sum(m.share for m in self.modules.values() if m.usable)
        return -total if self._desired.mode is PowerSupplyMode.IMPORT else total

    def acknowledge_faults(self, now: float) -> None:
        """Control starts anew (a new session): modules that are back may rejoin."""
        self._release_held(now, "faults acknowledged")

    def _release_held(self, now: float, why: str) -> None:
        released = [m for m in self.modules.values() if m.held and m.health is ModuleHealth.OK]
        for m in released:
            m.held = False
            self._event(now, "module_released", m.address,
                        f"module {m.address:#04x} rejoins: {why}")
        if released:
            self._desired.dirty = True
            if self._fault is not None and self.usable_modules:
                self._fault = None

    def _apply_mode(self, mode: PowerSupplyMode) -> None:
        if mode is not PowerSupplyMode.OFF:
            if self.interlock is not None and self.interlock():
                raise EmergencyStopActive("power stays off during an emergency stop")
            if self._desired.mode is PowerSupplyMode.OFF:
                # Control asks for power again: modules that came back may take part now.
                self._release_held(self._now, f"{mode} asked")
            if self._fault is not None:
                raise HalError(f"power supply faulted: {self._fault}")
        self._desired.mode = mode
        self._desired.dirty = True
        self._send_commands()

    def _apply_setpoint(self, volts: float, amps: float) -> None:
        self._desired.volts = volts
        self._desired.amps = amps
        self._desired.dirty = True
        self._send_commands()

    # ---- poll ----------------------------------------------------------------------------

    def poll(self, now: float) -> None:
        self._now = now
        if self._started is None:
            self._started = now
        self._receive(now)
        self._evaluate_health(now)
        if self._last_read is None or now - self._last_read >= self.status_interval - 1e-9:
            self._last_read = now
            self._send(Command.READ_OUTPUT, BROADCAST, ZERO)
            self._send(Command.READ_STATUS, BROADCAST, ZERO)
        if self._desired.dirty or (
            self._last_refresh is None or now - self._last_refresh >= self.refresh_interval
        ):
            self._send_commands()

    def _receive(self, now: float) -> None:
        for _ in range(1024):  # bounded: a flooding bus cannot stall the control loop
            try:
                msg = self.bus.recv(timeout=0.0)
            except can.CanError as exc:
                self.stats.receive_errors += 1
                self._rate_log("recv", "CAN receive failed: %s", exc)
                return
            if msg is None:
                return
            try:
                self._handle(now, msg)
            except (MalformedFrame, ValueError, TypeError) as exc:  # never out of poll()
                self.stats.malformed += 1
                self._rate_log("malformed", "undecodable frame dropped: %s", exc)

    def _handle(self, now: float, msg: can.Message) -> None:
        if not msg.is_extended_id or msg.is_remote_frame or msg.is_error_frame:
            self.stats.foreign += 1
            return
        fid = FrameId.decode(msg.arbitration_id)
        module = self.modules.get(fid.source)
        if (
            module is None
            or fid.device != DEVICE_MODULE
            or fid.destination not in (self.controller_address, BROADCAST)
        ):
            self.stats.foreign += 1
            return
        self.stats.frames_received += 1
        module.last_seen = now
        module.replies += 1
        if fid.error != ErrorCode.NORMAL:
            module.error_replies += 1
            self.stats.error_replies += 1
            self._rate_log(
                f"err{fid.source}",
                "module %#04x answered command %#04x with error %d",
                fid.source,
                fid.command,
                fid.error,
            )
            return
        data = bytes(msg.data)
        try:
            if fid.command == Command.READ_OUTPUT:
                module.voltage, module.current = unpack_output(data)
                module.output_time = now
            elif fid.command == Command.READ_STATUS:
                module.status = ModuleStatus.unpack(data)
                module.status_time = now
        except MalformedFrame as exc:
            self.stats.malformed += 1
            self._rate_log("malformed", "malformed frame from module %#04x: %s", fid.source, exc)

    def _evaluate_health(self, now: float) -> None:
        assert self._started is not None
        changed = False
        for m in self.modules.values():
            old, new = m.health, self._health_of(m, now)
            if new is not old:
                m.health = new
                changed |= self._announce_health(m, old, now)
        changed |= self._check_usable(now)
        if changed:
            self._desired.dirty = True

    def _health_of(self, m: ModuleState, now: float) -> ModuleHealth:
        assert self._started is not None
        if m.status_time is None:
            return (ModuleHealth.LOST if now - self._started > self.module_timeout
                    else ModuleHealth.UNKNOWN)
        if now - m.status_time > self.module_timeout:
            return ModuleHealth.LOST  # only a fresh status says the module is well
        if m.status is not None and m.status.bits & FAULT_BITS:
            return ModuleHealth.FAULT
        return ModuleHealth.OK

    def _announce_health(self, m: ModuleState, old: ModuleHealth, now: float) -> bool:
        """The event of a module's new health (lost and faulted ones are held off); whether
        the commands must be sent again."""
        if m.health is ModuleHealth.LOST:
            self._event(now, "module_lost", m.address,
                        f"module {m.address:#04x} {self._silence(m, now)}")
            m.held = True
            return True
        if m.health is ModuleHealth.FAULT:
            bits = m.status.bits if m.status is not None else StatusBits(0)
            self._event(now, "module_fault", m.address, f"module {m.address:#04x}: {bits!r}")
            m.held = True
            return True
        if old in (ModuleHealth.LOST, ModuleHealth.FAULT):
            held = " (held off until control asks for power again)" if m.held else ""
            self._event(now, "module_recovered", m.address,
                        f"module {m.address:#04x} back{held}")
            return True
        return False

    def _silence(self, m: ModuleState, now: float) -> str:
        """How a lost module went quiet."""
        if m.last_seen is None:
            return "never answered"
        if m.status_time is None or now - m.last_seen <= self.module_timeout:
            age = "none" if m.status_time is None else f"{now - m.status_time:.3f} s old"
            return f"answers, but sends no fresh status (last: {age})"
        return f"silent for {now - m.last_seen:.3f} s"

    def _check_usable(self, now: float) -> bool:
        """No usable module left: the supply faults and goes off; one back clears it.
        Whether the commands must be sent again."""
        if self.usable_modules:
            self._fault = None  # a module is back: usable again (a supervisor latches trips)
            return False
        if self._fault is not None:
            return False
        self._fault = f"all {len(self.modules)} power modules lost or faulted"
        self._event(now, "all_lost", None, self._fault)
        self._desired.mode = PowerSupplyMode.OFF
        self._mode = PowerSupplyMode.OFF
        self._setpoint = (0.0, 0.0)
        return True

    # ---- transmit ------------------------------------------------------------------------

    def _send_commands(self) -> None:
        """Tell every module its part of the desired state (and the unusable ones: off)."""
        d = self._desired
        usable = [self.modules[a] for a in self.usable_modules]
        for m in self.modules.values():
            if not m.usable:
                m.share = 0.0
        r = self.rating
        total = abs(d.amps)
        derated = False
        if d.mode is PowerSupplyMode.OFF or not usable:
            for m in usable:
                m.share = 0.0
        else:
            cap = (
                r.max_discharge_current
                if d.mode is PowerSupplyMode.IMPORT
                else (r.max_charge_current)
            )
            share = total / len(usable)
            if share > cap + 1e-9:
                share, derated = cap, True
            for m in usable:
                m.share = share
        if derated and not self._derated:
            self._event(
                self._now,
                "derated",
                None,
                f"{total:.1f} A asked, {len(usable)} module(s) give {len(usable) * cap:.1f} A",
            )
        self._derated = derated
        ok = True
        for m in self.modules.values():
            if d.mode is PowerSupplyMode.OFF or not m.usable:
                ok &= self._send(Command.SET_ON_OFF, m.address, pack_on_off(False))
                continue
            if d.mode is PowerSupplyMode.IMPORT:
                ok &= self._send(
                    Command.SET_DIRECTION, m.address, pack_direction(Direction.DISCHARGE)
                )
                ok &= self._send(
                    Command.SET_DISCHARGE, m.address, pack_milli_pair(d.volts, m.share)
                )
            else:
                ok &= self._send(Command.SET_DIRECTION, m.address, pack_direction(Direction.CHARGE))
                ok &= self._send(Command.SET_OUTPUT, m.address, pack_milli_pair(d.volts, m.share))
            ok &= self._send(Command.SET_ON_OFF, m.address, pack_on_off(True))
        d.dirty = not ok  # retried at the next poll if the bus refused a frame
        self._last_refresh = self._now

    def _send(self, command: Command, destination: int, data: bytes) -> bool:
        can_id = FrameId(0, DEVICE_MODULE, command, destination, self.controller_address).encode()
        msg = can.Message(arbitration_id=can_id, is_extended_id=True, data=data)
        try:
            self.bus.send(msg, timeout=0.0)
        except (can.CanError, OSError) as exc:
            self.stats.send_errors += 1
            self._rate_log("send", "CAN send failed: %s", exc)
            return False
        self.stats.frames_sent += 1
        return True

    # ---- helpers -------------------------------------------------------------------------

    def _event(self, now: float, kind: str, module: int | None, text: str) -> None:
        self.stats.events += 1
        self.events.append(SupplyEvent(now, kind, module, text))
        if kind == "module_recovered":
            log.info("%s", text)
        else:
            log.warning("%s", text)

    def _rate_log(self, key: str, msg: str, *args: Any) -> None:
        n = self._log_counts.get(key, 0) + 1
        self._log_counts[key] = n
        if n <= 5 or n % 100 == 0:
            log.warning(msg + " [#%d]", *args, n)

    def close(self) -> None:
        with contextlib.suppress(HalError):
            self.set_mode(PowerSupplyMode.OFF)


__all__ = [
    "CanPowerSupply",
    "CanStats",
    "ModuleHealth",
    "ModuleRating",
    "ModuleState",
    "SupplyEvent",
]

"""The `sim` HAL backend: the HAL interfaces over the SIL physics in `hal.sim`.

Every part says `simulated = True`; next to real hardware it is chosen per part (see
hal/parts.py), never filled in silently.

Everything advances only in `poll(now)`, on whatever clock the caller runs (a fake one in
tests). The backend owns the simulated EV battery (`ev_battery`) and the EV's contactors
(`ev_contactor_closed`) so an EV simulator can share them; `inject_*` / `press_*` methods
and the public model objects (`stage`, `contactor`, `isolation`) are the fault-injection
seams.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from hal.interfaces import (
    Board,
    EmergencyStopActive,
    HalBackend,
    HalError,
    IsolationMonitor,
    IsolationReading,
    Measurement,
    Meter,
    MeterReading,
    PilotState,
    PowerSupplyCapabilities,
    PowerSupplyDC,
    PowerSupplyMode,
)
from hal.sim.battery import EvBattery
from hal.sim.isolation import IsolationModel
from hal.sim.power_stage import Contactor, DcPowerStage

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# A 150 kW bidirectional cabinet (50 kW back to the grid), 150-920 V.
DEFAULT_CAPABILITIES = PowerSupplyCapabilities(
    bidirectional=True,
    min_voltage=150.0,
    max_voltage=920.0,
    max_charge_current=200.0,
    max_charge_power=150_000.0,
    max_discharge_current=100.0,
    max_discharge_power=50_000.0,
)


class SimPowerSupply(PowerSupplyDC):
    simulated = True

    def __init__(self, stage: DcPowerStage, estop_active: Callable[[], bool]) -> None:
        super().__init__()
        self._stage = stage
        self._estop_active = estop_active
        self._fault: str | None = None

    @property
    def capabilities(self) -> PowerSupplyCapabilities:
        return self._stage.capabilities

    def measurement(self) -> Measurement:
        stage = self._stage
        return Measurement(stage.voltage, stage.current, stage.last_now or 0.0)

    @property
    def fault(self) -> str | None:
        return self._fault

    def inject_fault(self, reason: str) -> None:
        """The converter trips: output off until `clear_fault()`."""
        self._fault = reason
        self.set_mode(PowerSupplyMode.OFF)

    def clear_fault(self) -> None:
        self._fault = None

    def _apply_mode(self, mode: PowerSupplyMode) -> None:
        if mode is not PowerSupplyMode.OFF:
            if self._estop_active():
                raise EmergencyStopActive("power stays off during an emergency stop")
            if self._fault is not None:
                raise HalError(f"power supply faulted: {self._fault}")
        self._stage.command(mode, 0.0, 0.0)

    def _apply_setpoint(self, volts: float, amps: float) -> None:
        self._stage.command(self._stage.mode, volts, amps)


class SimBoard(Board):
    simulated = True

    def __init__(self, contactor: Contactor, on_emergency_stop: Callable[[], None]) -> None:
        super().__init__()
        self._contactor = contactor
        self._on_emergency_stop = on_emergency_stop
        self._ev_pilot = PilotState.A
        self._estop_latched = False
        self.emergency_stop_button_pressed = False
        # a simulated car that stays plugged in (`sim:plugged`): B, and C when the charger
        # closes the contactors for it (the car asks for energy), never unplugged by itself
        self.car_plugged = False

    def plug_car(self) -> None:
        """A car is plugged in and drives the pilot itself: B now, C when energy comes."""
        self.car_plugged = True
        self._ev_pilot = PilotState.B

    @property
    def pilot_state(self) -> PilotState:
        # 0 % duty drives -12 V, whatever the EV does.
        return PilotState.F if self.pwm_duty == 0.0 else self._ev_pilot

    def set_ev_pilot_state(self, state: PilotState) -> None:
        """What the simulated EV does to the pilot (A-E; F is the EVSE's own)."""
        if state is PilotState.F:
            raise ValueError("state F is driven by the EVSE (duty 0 %), not by the EV")
        self._ev_pilot = state

    @property
    def contactors_closed(self) -> bool:
        return self._contactor.closed

    @property
    def emergency_stop_active(self) -> bool:
        return self._estop_latched

    def press_emergency_stop_button(self) -> None:
        self.emergency_stop_button_pressed = True
        self.emergency_stop()

    def release_emergency_stop_button(self) -> None:
        self.emergency_stop_button_pressed = False

    def reset_emergency_stop(self) -> bool:
        if not self.emergency_stop_button_pressed:
            self._estop_latched = False
        return not self._estop_latched

    def _apply_pwm_duty(self, percent: float) -> None:
        pass  # the pilot state reads pwm_duty directly

    def _apply_contactors(self, closed: bool) -> None:
        if closed and self.car_plugged and self._ev_pilot is PilotState.B:
            self._ev_pilot = PilotState.C  # the plugged car is ready for energy
        self._contactor.command(closed)

    def _apply_emergency_stop(self) -> None:
        self._estop_latched = True
        self._contactor.command(False)
        self._on_emergency_stop()


class SimIsolationMonitor(IsolationMonitor):
    simulated = True

    def __init__(self, model: IsolationModel) -> None:
        self._model = model

    def start(self) -> None:
        self._model.start()

    def stop(self) -> None:
        self._model.stop()

    def start_self_test(self) -> None:
        self._model.start_self_test()

    @property
    def measuring(self) -> bool:
        return self._model.measuring

    @property
    def self_test_passed(self) -> bool | None:
        return self._model.self_test_passed

    def reading(self) -> IsolationReading | None:
        reading = self._model.reading
        return None if reading is None else IsolationReading(*reading)

    @property
    def fault(self) -> str | None:
        return self._model.device_fault


def sim_meter_payload(reading: MeterReading) -> bytes:
    """The bytes the sim meter signs: id, then Wh in, Wh out and timestamp as big-endian
    doubles. Verify with the public key: ``key.verify(reading.signature, payload)``."""
    return reading.meter_id.encode() + struct.pack(
        ">ddd", reading.energy_imported_wh, reading.energy_exported_wh, reading.timestamp
    )


class SimMeter(Meter):
    simulated = True

    def __init__(
        self, stage: DcPowerStage, meter_id: str, signing_key: Ed25519PrivateKey | None = None
    ) -> None:
        self._stage = stage
        self._meter_id = meter_id
        self._signing_key = signing_key

    @property
    def meter_id(self) -> str:
        return self._meter_id

    def reading(self) -> MeterReading:
        stage = self._stage
        reading = MeterReading(
            meter_id=self._meter_id,
            energy_imported_wh=stage.energy_imported_wh,
            energy_exported_wh=stage.energy_exported_wh,
            voltage=stage.voltage,
            current=stage.current,
            timestamp=stage.last_now or 0.0,
        )
        if self._signing_key is None:
            return reading
        # Ed25519: a 64-byte signature, which fits ISO 15118-20's MeterSignature.
        signature = self._signing_key.sign(sim_meter_payload(reading))
        return dataclasses.replace(reading, signature=signature)


class SimBackend(HalBackend):
    name = "sim"
    label = "sim"

    def __init__(
        self,
        *,
        capabilities: PowerSupplyCapabilities = DEFAULT_CAPABILITIES,
        battery: EvBattery | None = None,
        voltage_ramp: float = 200.0,
        current_ramp: float = 100.0,
        precharge_current_limit: float = 2.0,
        discharge_rate: float = 500.0,
        contactor_switch_time: float = 0.03,
        isolation_resistance_ohm: float = 5e6,
        imd_measuring_time: float = 1.0,
        imd_self_test_time: float = 2.0,
        meter_id: str = "SIM-METER-0001",
        meter_signing_key: Ed25519PrivateKey | None = None,
        ev_contactor_closed: bool = False,
        plugged: bool = False,
        target: str | None = None,
    ) -> None:
        if target not in (None, "plugged"):
            raise ValueError(f"sim backend: unknown target {target!r} (only 'plugged')")
        plugged = plugged or target == "plugged"
        for name, value in (
            ("voltage_ramp", voltage_ramp),
            ("current_ramp", current_ramp),
            ("discharge_rate", discharge_rate),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number")
        self.ev_battery = battery if battery is not None else EvBattery()
        self.contactor = Contactor(contactor_switch_time)
        self.stage = DcPowerStage(
            capabilities,
            self.ev_battery,
            contactor=self.contactor,
            voltage_ramp=voltage_ramp,
            current_ramp=current_ramp,
            precharge_current_limit=precharge_current_limit,
            discharge_rate=discharge_rate,
        )
        self.stage.ev_contactor_closed = ev_contactor_closed
        self.isolation = IsolationModel(
            isolation_resistance_ohm,
            measuring_time=imd_measuring_time,
            self_test_time=imd_self_test_time,
        )
        self._board = SimBoard(self.contactor, self._on_emergency_stop)
        if plugged:  # `--hal sim:plugged`: a car on the cable from the start
            self._board.plug_car()
        self._power_supply = SimPowerSupply(self.stage, lambda: self._board.emergency_stop_active)
        self._imd = SimIsolationMonitor(self.isolation)
        self._meter = SimMeter(self.stage, meter_id, meter_signing_key)

    @property
    def power_supply(self) -> SimPowerSupply:
        return self._power_supply

    @property
    def board(self) -> SimBoard:
        return self._board

    @property
    def isolation_monitor(self) -> SimIsolationMonitor:
        return self._imd

    @property
    def meter(self) -> SimMeter:
        return self._meter

    @property
    def ev_contactor_closed(self) -> bool:
        return self.stage.ev_contactor_closed

    @ev_contactor_closed.setter
    def ev_contactor_closed(self, closed: bool) -> None:
        self.stage.ev_contactor_closed = closed

    def _on_emergency_stop(self) -> None:
        self._power_supply.set_mode(PowerSupplyMode.OFF)

    def poll(self, now: float) -> None:
        self.stage.step(now)
        self.isolation.step(now)

"""hal.compose: four parts, each assigned explicitly; objects, devices, names or tables;
shared instances; what is simulated said and refused next to real power hardware."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hal_rigs import unique_channel

import hal
from hal.backends.can import CanBackend
from hal.backends.serial import SerialBackend
from hal.backends.sim import SimBackend
from hal.interfaces import Meter, MeterReading
from hal.parts import MissingPart, SimulatedPartsRefused, compose, describe
from hal.registry import (
    available_parts,
    create_backend_from_config,
    create_backend_from_spec,
    register_part,
    unregister_part,
)
from simulators.mcu import PtyPair


class CountingMeter(Meter):
    """An integrator's one real part: only the Meter ABC, plus poll and close."""

    def __init__(self, meter_id: str = "OEM-1", wh_per_poll: float = 1.0) -> None:
        self._id, self.step = meter_id, wh_per_poll
        self.polls: list[float] = []
        self.closed = False

    @property
    def meter_id(self) -> str:
        return self._id

    def poll(self, now: float) -> None:
        self.polls.append(now)

    def close(self) -> None:
        self.closed = True

    def reading(self) -> MeterReading:
        now = self.polls[-1] if self.polls else 0.0
        return MeterReading(self._id, self.step * len(self.polls), 0.0, 0.0, 0.0, now)


@pytest.fixture
def oem_meter() -> Iterator[str]:
    register_part("oem-meter", CountingMeter)
    yield "oem-meter"
    unregister_part("oem-meter")


def test_hal_exports_the_public_api() -> None:
    for name in ("Board", "PowerSupplyDC", "IsolationMonitor", "Meter", "HalBackend",
                 "compose", "register_backend", "register_part", "describe", "MissingPart"):
        assert name in hal.__all__ and hasattr(hal, name)
    assert hal.compose is compose


def test_every_part_is_required_and_named_when_missing() -> None:
    with pytest.raises(MissingPart, match="no power_supply, isolation_monitor given"):
        compose(board="sim", meter=CountingMeter())
    with pytest.raises(MissingPart, match="no board, power_supply, isolation_monitor, meter"):
        compose()


def test_one_real_part_from_an_object_the_rest_simulated_by_name() -> None:
    meter = CountingMeter()
    backend = compose(board="sim", power_supply="sim", insulation_monitor="sim", meter=meter)
    sim = backend.sources["board"]
    assert isinstance(sim, SimBackend)
    assert backend.sources["power_supply"] is sim and backend.sources["isolation_monitor"] is sim
    assert backend.meter is meter and backend.backends == [sim, meter]
    backend.poll(1.0)
    backend.poll(2.0)
    assert meter.polls == [1.0, 2.0]  # a part with poll() is polled once per poll
    assert backend.meter.reading().energy_imported_wh == 2.0
    assert [str(i) for i in describe(backend)] == [
        "board: sim (SIMULATED)", "power_supply: sim (SIMULATED)",
        "isolation_monitor: sim (SIMULATED)", "meter: CountingMeter (real)"]
    backend.close()
    assert meter.closed


def test_a_registered_part_class_by_name_with_options(oem_meter: str) -> None:
    assert oem_meter in available_parts()
    backend = compose(board="sim", power_supply="sim", isolation_monitor="sim",
                      meter={"backend": oem_meter, "meter_id": "OEM-7", "wh_per_poll": 5.0})
    assert backend.meter.meter_id == "OEM-7"
    backend.poll(1.0)
    assert backend.meter.reading().energy_imported_wh == 5.0
    with pytest.raises(MissingPart, match="provides only meter"):
        compose(board=oem_meter, power_supply="sim", isolation_monitor="sim", meter="sim")
    backend.close()


def test_parts_naming_one_backend_share_it_with_merged_options() -> None:
    backend = compose(board="sim", power_supply={"backend": "sim", "meter_id": "M-1"},
                      isolation_monitor={"backend": "sim", "isolation_resistance_ohm": 1e6},
                      meter="sim")
    assert len(backend.backends) == 1
    assert backend.meter.meter_id == "M-1"
    with pytest.raises(ValueError, match="isolation_monitor, whose meter_id is .M-1."):
        compose(board="sim", power_supply={"backend": "sim", "meter_id": "M-1"},
                isolation_monitor="sim", meter={"backend": "sim", "meter_id": "M-2"})
    with pytest.raises(ValueError, match="backend = NAME"):
        compose(board="sim", power_supply="sim", isolation_monitor="sim",
                meter={"meter_id": "M-2"})
    with pytest.raises(TypeError, match="meter: expected a Meter"):
        compose(board="sim", power_supply="sim", isolation_monitor="sim",
                meter=SimBackend().board)  # type: ignore[arg-type]


def test_real_power_hardware_beside_a_simulated_imd_is_refused() -> None:
    channel = unique_channel()
    spec = {"backend": "can", "interface": "virtual", "channel": channel}
    with pytest.raises(SimulatedPartsRefused, match="real power supply with a SIMULATED"):
        compose(board="sim", power_supply=spec, isolation_monitor="sim", meter="sim")
    backend = compose(board="sim", power_supply=spec, isolation_monitor="sim", meter="sim",
                      allow_simulated_parts=True)
    assert isinstance(backend.sources["power_supply"], CanBackend)
    assert backend.simulated_parts == ("board", "isolation_monitor", "meter")
    backend.close()
    # Simulated modules make the supply a simulation too: nothing real to protect.
    sim_modules = {"backend": "can", "interface": "virtual", "simulated_modules": True,
                   "channel": unique_channel()}
    compose(board="sim", power_supply=sim_modules, isolation_monitor="sim", meter="sim").close()


def test_a_device_alone_lacks_the_parts_it_does_not_provide() -> None:
    with PtyPair() as pty:
        serial = SerialBackend(pty.port)
        with pytest.raises(MissingPart, match="provides only the board; the meter"):
            serial.meter  # noqa: B018 - the property raises
        serial.close()
        with pytest.raises(MissingPart, match="no backend for power_supply, isolation_monitor"):
            create_backend_from_spec(f"serial:{pty.port}")


def test_spec_items_assign_single_parts() -> None:
    with PtyPair() as pty:
        backend = create_backend_from_spec(
            f"board=serial:{pty.port},power_supply=sim,isolation_monitor=sim,meter=sim",
            {"sim": {"meter_id": "M-5"}}, allow_simulated_parts=True)
        assert isinstance(backend.sources["board"], SerialBackend)  # type: ignore[attr-defined]
        assert backend.meter.meter_id == "M-5"
        backend.close()
    with pytest.raises(ValueError, match="assigned twice"):
        create_backend_from_spec("meter=sim,meter=sim,sim")
    with pytest.raises(ValueError, match="not a HAL part|unknown HAL part"):
        create_backend_from_spec("wheel=sim,sim")


def test_config_parts_table(oem_meter: str) -> None:
    backend = create_backend_from_config({"parts": {
        "board": "sim", "power_supply": "sim", "insulation_monitor": {"backend": "sim"},
        "meter": {"backend": oem_meter, "meter_id": "OEM-9"}}})
    assert backend.meter.meter_id == "OEM-9"
    backend.close()
    with pytest.raises(MissingPart, match="no isolation_monitor, meter given"):
        create_backend_from_config({"parts": {"board": "sim", "power_supply": "sim"}})
    with pytest.raises(ValueError, match="not both"):
        create_backend_from_config({"backends": "sim", "parts": {"board": "sim"}})

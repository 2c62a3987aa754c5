import math

import pytest

from simulators.battery import (
    EvBattery,
    OcvCurve,
    current_for_power,
    discharge_current_for_power,
)

TABLE = ((0.0, 300.0), (0.5, 350.0), (1.0, 400.0))


def test_ocv_interpolates_and_clamps() -> None:
    curve = OcvCurve(TABLE)
    assert curve(0.0) == 300.0
    assert curve(0.25) == pytest.approx(325.0)
    assert curve(0.5) == 350.0
    assert curve(0.9) == pytest.approx(390.0)
    assert curve(-0.1) == 300.0
    assert curve(1.2) == 400.0


@pytest.mark.parametrize(
    "points", [((0.0, 1.0),), ((0.5, 1.0), (0.5, 2.0)), ((0.6, 1.0), (0.1, 2.0))]
)
def test_ocv_rejects_bad_tables(points: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError):
        OcvCurve(points)


def battery(**kw: float) -> EvBattery:
    args: dict[str, float] = {"capacity_kwh": 35.0, "soc": 0.5, "internal_resistance_ohm": 0.2}
    args.update(kw)
    return EvBattery(ocv_table=TABLE, **args)


def test_capacity_in_ah_uses_nominal_voltage() -> None:
    b = battery()
    assert b.nominal_voltage == 350.0
    assert b.capacity_ah == pytest.approx(100.0)


def test_terminal_voltage_is_ocv_plus_ir() -> None:
    b = battery()
    assert b.terminal_voltage_at(100.0) == pytest.approx(370.0)
    assert b.terminal_voltage_at(-50.0) == pytest.approx(340.0)
    b.step(-50.0, 0.0)
    assert b.terminal_voltage == pytest.approx(340.0)


def test_soc_integrates_current() -> None:
    b = battery(soc=0.2)
    b.step(100.0, 1800.0)  # 50 Ah into 100 Ah
    assert b.soc == pytest.approx(0.7)
    b.step(-20.0, 3600.0)  # 20 Ah out
    assert b.soc == pytest.approx(0.5)
    assert b.ocv == pytest.approx(350.0)


def test_soc_saturates() -> None:
    b = battery(soc=0.99)
    b.step(100.0, 3600.0)
    assert b.soc == 1.0
    b.step(-500.0, 3600.0)
    assert b.soc == 0.0


def test_negative_dt_is_rejected() -> None:
    with pytest.raises(ValueError):
        battery().step(1.0, -0.1)


def test_invalid_construction() -> None:
    with pytest.raises(ValueError):
        battery(soc=1.5)
    with pytest.raises(ValueError):
        battery(capacity_kwh=0.0)


def test_power_helpers_hit_the_power_exactly() -> None:
    i = current_for_power(350.0, 0.2, 50_000.0)
    assert i * (350.0 + i * 0.2) == pytest.approx(50_000.0)
    d = discharge_current_for_power(350.0, 0.2, 50_000.0)
    assert d * (350.0 - d * 0.2) == pytest.approx(50_000.0)
    assert discharge_current_for_power(350.0, 0.2, 1e9) == math.inf  # unreachable power
    assert current_for_power(350.0, 0.0, 35_000.0) == pytest.approx(100.0)


def test_charge_limit_respects_current_power_and_voltage() -> None:
    b = battery(max_charge_current=500.0, max_charge_power=1e9, max_voltage=360.0)
    assert b.charge_current_limit() == pytest.approx(50.0)  # (360 - 350) / 0.2
    b = battery(max_charge_current=500.0, max_charge_power=35_000.0, max_voltage=1000.0)
    limit = b.charge_current_limit()
    assert limit * b.terminal_voltage_at(limit) == pytest.approx(35_000.0)
    b = battery(max_charge_current=80.0, max_charge_power=1e9, max_voltage=1000.0)
    assert b.charge_current_limit() == 80.0


def test_limits_are_zero_at_the_ends() -> None:
    assert battery(soc=1.0).charge_current_limit() == 0.0
    assert battery(soc=0.0).discharge_current_limit() == 0.0
    assert battery(soc=0.5, min_voltage=340.0).discharge_current_limit() == pytest.approx(50.0)

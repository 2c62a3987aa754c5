"""RationalNumber conversion, timer constants and the power clamping functions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evse.protocol.iso20 import timeouts
from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.targets import ac_target, dc_target
from evse.protocol.units import from_rational, to_rational
from exi_codec.schemas.iso20_dc import RationalNumberType


@pytest.mark.parametrize(
    ("x", "exp", "val"),
    [
        (400.0, 0, 400),
        (400.5, -1, 4005),
        (150_000.0, 1, 15_000),
        (0.0, 0, 0),
        (2.5, -1, 25),
        (-29_900.0, 0, -29_900),
        (0.001, -3, 1),
        (1e-9, 0, 0),
        (32_767.0, 0, 32_767),
        (32_768.0, 1, 3_277),
    ],
)
def test_to_rational(x: float, exp: int, val: int) -> None:
    assert to_rational(x, RationalNumberType) == RationalNumberType(exponent=exp, value=val)


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_rational_fits_a_short_and_keeps_precision(x: float) -> None:
    r = to_rational(x, RationalNumberType)
    assert -32768 <= r.value <= 32767 and -3 <= r.exponent <= 127
    assert math.isclose(from_rational(r), x, rel_tol=1.6e-4, abs_tol=5e-4)


def test_to_rational_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        to_rational(math.inf, RationalNumberType)


def test_timeouts_match_design() -> None:
    t = timeouts.Timeouts()
    assert (
        t.sequence,
        t.charge_loop_sequence,
        t.ongoing,
        t.cable_check,
        t.communication_setup,
        t.close_after_session_stop,
    ) == (60, 0.5, 55, 40, 18, 5)
    assert t.performance_time("ServiceDetailReq") == 4.5
    assert t.performance_time("DC_ChargeLoopReq") == 0.25
    assert t.performance_time("PowerDeliveryReq") == 1.5
    assert t.sequence_after("AC_ChargeLoopReq") == 0.5
    assert set(timeouts.REQUIREMENT_IDS) == {
        n for n in vars(timeouts) if n.isupper() and isinstance(getattr(timeouts, n), float)
    }


EVSE = EvseLimits(
    max_charge_power=50_000,
    max_charge_current=125,
    max_voltage=500,
    min_voltage=150,
    max_discharge_power=20_000,
    max_discharge_current=50,
)
EV = EvLimits(
    max_charge_power=100_000,
    max_charge_current=200,
    max_voltage=450,
    min_voltage=200,
    max_discharge_power=15_000,
    max_discharge_current=40,
)


def test_dc_target_clamps_each_limit() -> None:
    t = dc_target(480, 100, present_voltage=400, evse=EVSE, ev=EV)
    assert (t.voltage, t.current, t.voltage_limited) == (450, 100, True)
    t = dc_target(400, 150, present_voltage=400, evse=EVSE, ev=EV)
    assert t.current == 125 and t.current_limited and not t.power_limited
    t = dc_target(400, 100, present_voltage=400, evse=EVSE, ev=EV, schedule=(8_000, 0))
    assert t.current == 20 and t.power_limited
    t = dc_target(400, -60, present_voltage=400, evse=EVSE, ev=EV, bpt=True)
    assert t.current == -37.5 and t.current_limited and t.power_limited
    assert dc_target(400, -10, present_voltage=400, evse=EVSE, ev=EV).current == 0  # no BPT
    assert (
        dc_target(
            400, -10, present_voltage=400, evse=EVSE, ev=EV, bpt=True, channel="Charge"
        ).current
        == 0
    )
    assert (
        dc_target(
            400, 10, present_voltage=400, evse=EVSE, ev=EV, bpt=True, channel="Discharge"
        ).current
        == 0
    )


@given(v=st.floats(0, 1000), i=st.floats(-500, 500), present=st.floats(0, 1000), bpt=st.booleans())
def test_dc_target_never_exceeds_any_limit(v: float, i: float, present: float, bpt: bool) -> None:
    t = dc_target(v, i, present_voltage=present, evse=EVSE, ev=EV, bpt=bpt)
    assert 150 <= t.voltage <= 450
    at = present if present > 1 else t.voltage
    if t.current >= 0:
        assert t.current <= 125 + 1e-9 and t.current * at <= 50_000 + 1e-6
    else:
        assert bpt and -t.current <= 40 + 1e-9 and -t.current * at <= 15_000 + 1e-6
    assert (t.current >= 0) == (i >= 0) or t.current == 0


def test_ac_target() -> None:
    assert ac_target(20_000, evse=EVSE, ev=EV) == (20_000, False)
    assert ac_target(-30_000, evse=EVSE, ev=EV, bpt=True) == (-15_000, True)
    assert ac_target(-30_000, evse=EVSE, ev=EV) == (0.0, True)

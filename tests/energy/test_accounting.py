"""session_money: metered energy priced along the session's power samples."""

from __future__ import annotations

import pytest

from evse.energy.accounting import curve_lookup, session_money
from evse.energy.prices import PriceCurve

T0 = 1_700_000_000.0
CURVE = PriceCurve.day_ahead(T0, 3600.0, [0.10, 0.50], [0.05, 0.40])


def test_energy_is_priced_where_it_flowed_and_scaled_to_the_meter() -> None:
    # 1 h charging at 10 kW in the cheap hour, 30 min discharging at 4 kW in the dear one
    samples = [(T0, 10_000.0), (T0 + 3600, -4_000.0), (T0 + 5400, 0.0)]
    m = session_money(samples, energy_in_kwh=9.0, energy_out_kwh=2.2,
                      prices=curve_lookup(CURVE), currency="EUR", degradation_cost=0.05,
                      discharge_efficiency=0.9, ended_at=T0 + 7200)
    assert m.energy_bought_kwh == 9.0 and m.energy_sold_kwh == 2.2  # the meter's totals
    assert m.cost_bought == pytest.approx(9.0 * 0.10)
    assert m.revenue_sold == pytest.approx(2.2 * 0.40)
    assert m.degradation == pytest.approx(0.05 * 2.2 / 0.9)
    assert m.net == pytest.approx(0.9 - 0.88 + 0.05 * 2.2 / 0.9)


def test_without_samples_the_average_price_applies() -> None:
    m = session_money([], energy_in_kwh=1.0, energy_out_kwh=0.0, prices=curve_lookup(CURVE),
                      currency="EUR", started_at=T0, ended_at=T0 + 7200)
    assert m.cost_bought == pytest.approx(0.30)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="discharge_efficiency"):
        session_money([], energy_in_kwh=0, energy_out_kwh=0, prices=curve_lookup(CURVE),
                      currency="EUR", discharge_efficiency=0)

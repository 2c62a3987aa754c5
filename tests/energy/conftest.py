"""Shared price scenarios for the energy tests."""

from __future__ import annotations

from evse.energy.prices import PriceCurve

DAY = 1_700_006_400  # a UTC midnight (2023-11-15 00:00)
HOUR = 3600.0

NIGHT_BUY, DAY_BUY, PEAK_BUY = 0.10, 0.25, 0.45
NIGHT_SELL, DAY_SELL, PEAK_SELL = 0.02, 0.05, 0.40  # peak spread vs night: 0.30 per kWh


def day_ahead(peak_sell: float = PEAK_SELL) -> PriceCurve:
    """Two days of hourly prices: cheap night (00-06), evening peak (17-21)."""
    buy, sell = [], []
    for h in range(24):
        if h < 6:
            buy.append(NIGHT_BUY)
            sell.append(NIGHT_SELL)
        elif 17 <= h < 21:
            buy.append(PEAK_BUY)
            sell.append(peak_sell)
        else:
            buy.append(DAY_BUY)
            sell.append(DAY_SELL)
    return PriceCurve.day_ahead(DAY, HOUR, buy * 2, sell * 2)

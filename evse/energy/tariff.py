"""Retail prices from wholesale day-ahead prices: adders made explicit (pure).

    buy  = (wholesale + supplier_margin + grid_fee + energy_tax) x (1 + vat)
    sell = wholesale x export_share - export_fee          (the export contract)

The defaults are illustrative round figures for a household on a dynamic contract, not a
particular supplier's or grid operator's tariff; set your own (docs/config.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evse.energy.prices import PriceCurve

__all__ = ["RetailTariff", "bundled_day_curve"]


@dataclass(frozen=True, slots=True)
class RetailTariff:
    supplier_margin: float = 0.01  # currency per kWh
    grid_fee: float = 0.05  # distribution + transmission, energy part, per kWh
    energy_tax: float = 0.0  # excise and levies per kWh
    vat: float = 0.06  # fraction (Belgium: 6 % on household electricity)
    export_share: float = 1.0  # export contract: this share of the wholesale price ...
    export_fee: float = 0.005  # ... minus this per kWh fed in

    def buy(self, wholesale: float) -> float:
        return (wholesale + self.supplier_margin + self.grid_fee + self.energy_tax) * (
            1.0 + self.vat)

    def sell(self, wholesale: float) -> float:
        return wholesale * self.export_share - self.export_fee

    def curve(self, start: float, slot_s: float, wholesale: Sequence[float], *,
              currency: str = "EUR") -> PriceCurve:
        return PriceCurve.day_ahead(start, slot_s, [self.buy(w) for w in wholesale],
                                    [self.sell(w) for w in wholesale], currency=currency)


def bundled_day_curve(days: Sequence[str], tariff: RetailTariff) -> PriceCurve:
    """Consecutive bundled days (evse.energy.data.be_2024) as a retail curve on Unix time."""
    from datetime import UTC, datetime

    from evse.energy.data.be_2024 import DAYS, UTC_OFFSET_H

    first = days[0]
    y, m, d = (int(x) for x in first.split("-"))
    start = datetime(y, m, d, tzinfo=UTC).timestamp() - UTC_OFFSET_H[first] * 3600.0
    prices = [p for day in days for p in DAYS[day]]
    return tariff.curve(start, 3600.0, prices)

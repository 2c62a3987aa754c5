"""Energy prices over time: what a kWh costs from the grid and earns when fed back.

Pure data, no I/O. Times are seconds on whatever clock the caller uses (normally the Unix
epoch, which is what ISO 15118-20 TimeAnchor expects); prices are in `currency` per kWh
measured at the charger's grid connection (the meter), never per kWh in the battery.

A PriceCurve is a sorted, gap-free run of slots. Before its first slot and after its last one
the nearest slot's prices hold, so a flat tariff is simply a curve of one slot, and a day-ahead
list that ends before the EV leaves keeps its last price (give a longer curve if that matters).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PriceCurve", "PriceSlot", "PriceError"]


class PriceError(ValueError):
    """A price curve that makes no sense (gap, overlap, non-finite price, ...)."""


@dataclass(frozen=True, slots=True)
class PriceSlot:
    """Prices valid from `start` (inclusive) to `end` (exclusive), seconds.

    `buy`: paid per kWh taken from the grid; `sell`: received per kWh fed back (V2G). Either
    may be negative (day-ahead markets have negative hours). The first slot of a curve may
    start at -inf and the last may end at +inf (a flat tariff).
    """

    start: float
    end: float
    buy: float
    sell: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class PriceCurve:
    slots: tuple[PriceSlot, ...]
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if not self.slots:
            raise PriceError("a price curve needs at least one slot")
        if not (isinstance(self.currency, str) and 1 <= len(self.currency) <= 3):
            raise PriceError(f"currency must be a code of 1-3 characters, got {self.currency!r}")
        for i, s in enumerate(self.slots):
            if not (math.isfinite(s.buy) and math.isfinite(s.sell)):
                raise PriceError(f"slot {i}: prices must be finite numbers")
            if math.isnan(s.start) or math.isnan(s.end) or not s.start < s.end:
                raise PriceError(f"slot {i}: start must be before end")
            if i > 0 and math.isinf(s.start):
                raise PriceError(f"slot {i}: only the first slot may start at -inf")
            if i < len(self.slots) - 1 and math.isinf(s.end):
                raise PriceError(f"slot {i}: only the last slot may end at +inf")
            if i > 0 and s.start != self.slots[i - 1].end:
                raise PriceError(f"slot {i}: starts at {s.start}, previous slot ends at "
                                 f"{self.slots[i - 1].end} (gap or overlap)")

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def flat(cls, buy: float, sell: float = 0.0, *, currency: str = "EUR") -> PriceCurve:
        """The same prices at all times."""
        return cls((PriceSlot(-math.inf, math.inf, float(buy), float(sell)),), currency)

    @classmethod
    def day_ahead(cls, start: float, slot_s: float, buy: Sequence[float],
                  sell: Sequence[float] | float, *, currency: str = "EUR") -> PriceCurve:
        """Equal slots of `slot_s` seconds from `start`: `buy[i]` and `sell[i]` (or one sell
        price for all slots) apply to [start + i*slot_s, start + (i+1)*slot_s)."""
        if not slot_s > 0:
            raise PriceError("slot_s must be > 0")
        if not buy:
            raise PriceError("buy: at least one price needed")
        sells = [float(sell)] * len(buy) if isinstance(sell, int | float) else list(sell)
        if len(sells) != len(buy):
            raise PriceError(f"sell has {len(sells)} prices, buy has {len(buy)}")
        return cls(tuple(PriceSlot(start + i * slot_s, start + (i + 1) * slot_s, float(b),
                                   float(s)) for i, (b, s) in enumerate(zip(buy, sells,
                                                                            strict=True))),
                   currency)

    # -- queries -----------------------------------------------------------------------------

    @property
    def start(self) -> float:
        return self.slots[0].start

    @property
    def end(self) -> float:
        return self.slots[-1].end

    def _index(self, t: float) -> int:
        lo, hi = 0, len(self.slots) - 1
        if t < self.slots[0].end:
            return 0
        if t >= self.slots[-1].start:
            return hi
        while lo < hi:  # binary search: the slot with start <= t < end
            mid = (lo + hi) // 2
            if self.slots[mid].end <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def at(self, t: float) -> PriceSlot:
        """The slot whose prices apply at time t (nearest slot outside the curve)."""
        return self.slots[self._index(t)]

    def buy_at(self, t: float) -> float:
        return self.at(t).buy

    def sell_at(self, t: float) -> float:
        return self.at(t).sell

    def breakpoints(self, t0: float, t1: float) -> list[float]:
        """Times strictly between t0 and t1 where the prices may change."""
        return [s.start for s in self.slots[1:] if t0 < s.start < t1]

    def segments(self, t0: float, t1: float) -> Iterator[PriceSlot]:
        """The curve cut to [t0, t1): consecutive slots of constant price covering it."""
        if not t0 < t1:
            return
        t = t0
        i = self._index(t0)
        while t < t1:
            slot = self.slots[i]
            end = t1 if i == len(self.slots) - 1 else min(slot.end, t1)
            yield PriceSlot(t, end, slot.buy, slot.sell)
            t = end
            i += 1

    # -- (de)serialisation: the MQTT `prices` command and session reports use this form ------

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isinf(x) else x

        return {"currency": self.currency,
                "slots": [{"start": num(s.start), "end": num(s.end), "buy": s.buy,
                           "sell": s.sell} for s in self.slots]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceCurve:
        """Inverse of to_dict (start null = -inf, end null = +inf)."""
        slots = tuple(PriceSlot(-math.inf if s["start"] is None else float(s["start"]),
                                math.inf if s["end"] is None else float(s["end"]),
                                float(s["buy"]), float(s["sell"])) for s in data["slots"])
        return cls(slots, str(data.get("currency", "EUR")))

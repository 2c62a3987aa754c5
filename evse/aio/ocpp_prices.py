"""OCPP 2.1 price schedules / sales tariffs of a charging profile, checked when the CSMS sets
the profile (`ProfileStore.price_check`), and given to the EV at ScheduleExchange /
ChargeParameterDiscovery (docs/ocpp.md, "Price schedules and signed tariffs").

- A price schedule or sales tariff the ISO schemas cannot carry unchanged (a range, a string
  or a list too long, absolutePriceSchedule together with priceLevelSchedule): CallError
  PropertyConstraintViolation, nothing stored (as any out-of-range profile value).
- A signed one (digestValue + priceScheduleSignature) whose digest does not match the EXI the
  station builds: the profile is Rejected (InvalidProfile), nothing stored, and a
  SecurityEventNotification "InvalidPriceScheduleSignature" is queued when a sink is given
  (fail closed: see evse.security.price_signatures).
- Only the first chargingSchedule's price goes to the EV (the station runs that schedule);
  more than one signed schedule is refused, one SignatureValue signing several References
  that the EV would not all receive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from evse.ocpp.smart_charging import ProfileError, ProfileRejected
from evse.protocol.csms_prices import CsmsPrice, PriceScheduleError, check_schedule
from evse.security.price_signatures import PriceSignatureError, attach_signature

__all__ = ["PriceCheck"]

log = logging.getLogger(__name__)

PRICE_KEYS = ("absolutePriceSchedule", "priceLevelSchedule", "salesTariff")


class PriceCheck:
    """`ProfileStore.price_check`: the profile's price for the EV (CsmsPrice) or None."""

    def __init__(self, security_event: Callable[[str, str], None] | None = None) -> None:
        self._security_event = security_event

    def __call__(self, profile: dict[str, Any]) -> CsmsPrice | None:
        schedules = profile.get("chargingSchedule") or []
        prices = []
        for sched in schedules:  # every schedule is checked, even those not sent
            try:
                prices.append(check_schedule(sched))
            except PriceScheduleError as exc:
                raise ProfileError(f"price schedule: {exc}") from None
        signed = [s for s in schedules if "digestValue" in s]
        signature = profile.get("priceScheduleSignature")
        if len(signed) > 1 and signature is not None:
            raise ProfileRejected("more than one signed price schedule in one profile")
        if signature is not None and signed and signed[0] is not schedules[0]:
            raise ProfileRejected("priceScheduleSignature for a schedule the EV never gets")
        if not schedules or not any(k in schedules[0] for k in PRICE_KEYS):
            return None
        try:
            return attach_signature(prices[0], schedules[0], signature)
        except PriceSignatureError as exc:
            log.warning("profile %s: %s", profile.get("id"), exc)
            if self._security_event is not None:
                self._security_event("InvalidPriceScheduleSignature", str(exc)[:255])
            raise ProfileRejected(f"signed price schedule: {exc}") from None

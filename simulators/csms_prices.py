"""The CSMS simulator's eMSP: a price schedule / sales tariff attached to a charging profile,
signed with an eMSP (MO) key (OCPP 2.1 digestValue, signatureId, priceScheduleSignature).

The digest is over the EXI fragment the station builds from the same JSON (Id "PS<id>" /
"ST<id>", docs/ocpp.md "Price schedules and signed tariffs"); -20 signs with a P-521 (or
Ed448) key, -2 with a P-256 key.

    profile = priced_profile(V2X, absolute_price_schedule=PRICE, signer=emsp_key)
    CsmsSimulator(profile_on_start=profile)          # or sim.call(..., "SetChargingProfile")

The profile is in the simulator's snake_case (as `CsmsSimulator.profile_on_start` takes it);
the price parts are in OCPP's camelCase, which the `ocpp` library sends unchanged (its case
conversion would turn priceScheduleID into priceScheduleId).
"""

from __future__ import annotations

import copy
from typing import Any

from evse.protocol.csms_prices import check_schedule
from evse.security.price_signatures import sign_schedule

__all__ = ["EXAMPLE_ABSOLUTE_PRICE", "EXAMPLE_SALES_TARIFF", "priced_profile"]

EXAMPLE_ABSOLUTE_PRICE: dict[str, Any] = {
    "timeAnchor": "2026-01-01T00:00:00Z", "priceScheduleID": 7, "currency": "EUR",
    "language": "ENG", "priceAlgorithm": "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power",
    "priceScheduleDescription": "eMSP day tariff",
    "priceRuleStacks": [
        {"duration": 0, "priceRule": [
            {"energyFee": {"exponent": -2, "value": 32},
             "powerRangeStart": {"exponent": 0, "value": 0}},
            {"energyFee": {"exponent": -2, "value": 45},
             "powerRangeStart": {"exponent": 3, "value": 50}}]},
        {"duration": 7200, "priceRule": [
            {"energyFee": {"exponent": -3, "value": 185},
             "powerRangeStart": {"exponent": 0, "value": 0}}]}],
    "taxRules": [{"taxRuleID": 1, "taxRuleName": "VAT", "taxIncludedInPrice": True,
                  "appliesToEnergyFee": True, "appliesToParkingFee": False,
                  "appliesToOverstayFee": False, "appliesToMinimumMaximumCost": True,
                  "taxRate": {"exponent": -2, "value": 19}}],
}

EXAMPLE_SALES_TARIFF: dict[str, Any] = {
    "id": 5, "salesTariffDescription": "eMSP day/night", "numEPriceLevels": 2,
    "salesTariffEntry": [
        {"relativeTimeInterval": {"start": 0}, "ePriceLevel": 1},
        {"relativeTimeInterval": {"start": 3600, "duration": 3600}, "ePriceLevel": 0,
         "consumptionCost": [{"startValue": 0, "cost": [
             {"costKind": "RelativePricePercentage", "amount": 60}]}]}],
}


def priced_profile(profile: dict[str, Any], *, absolute_price_schedule: Any = None,
                   price_level_schedule: Any = None, sales_tariff: Any = None,
                   signer: Any = None, signature_id: int = 1) -> dict[str, Any]:
    """`profile` (snake_case) with the prices in its first charging schedule; `signer`: the
    eMSP's private key, else unsigned."""
    out = copy.deepcopy(profile)
    sched = out["charging_schedule"][0]
    for key, value in (("absolutePriceSchedule", absolute_price_schedule),
                       ("priceLevelSchedule", price_level_schedule),
                       ("salesTariff", sales_tariff)):
        if value is not None:
            sched[key] = copy.deepcopy(value)
    if signer is not None:
        digest, value = sign_schedule(signer, check_schedule(sched))
        sched["digestValue"] = digest
        sched["signatureId"] = signature_id
        out["priceScheduleSignature"] = value
    return out

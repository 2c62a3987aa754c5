"""Price schedules and sales tariffs from the CSMS (OCPP 2.1 ChargingSchedule) as ISO 15118
messages give them to the EV (pure).

OCPP 2.1 models `absolutePriceSchedule` / `priceLevelSchedule` after ISO 15118-20 and
`salesTariff` after ISO 15118-2 so that the JSON -> EXI conversion does not change the digest
of what the eMSP signed. This module is that conversion, field by field and without rounding
(a RationalNumber stays exponent/value, an integer stays the integer), and the check that the
values fit the ISO schemas (ranges, string lengths, list lengths): a value that does not fit
cannot be given to the EV unchanged, so the profile is refused (`PriceScheduleError`).

The Id attributes the XML signature references (not present in OCPP's JSON) follow one fixed
convention that a signer must use too (docs/ocpp.md, "Signed price schedules"):
-20 AbsolutePriceSchedule / PriceLevelSchedule `Id = "PS<priceScheduleID>"`, -2 SalesTariff
`Id = "ST<id>"`. timeAnchor (a date-time in OCPP) becomes Unix seconds (-20 TimeAnchor).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import exi_codec
from exi_codec.schemas import iso2, iso20

__all__ = ["CsmsPrice", "PriceScheduleError", "absolute_price_schedule", "check_schedule",
           "price_level_schedule", "price_schedule_id", "sales_tariff", "sales_tariff_id"]

UINT32 = 2**32 - 1
UINT16 = 2**16 - 1
UINT8 = 255
REL_START_MAX = 16777214  # -2 RelativeTimeInterval start
REL_DURATION_MAX = 86400  # -2 RelativeTimeInterval duration


class PriceScheduleError(ValueError):
    """A price schedule / sales tariff the ISO schemas cannot carry unchanged."""


@dataclass(frozen=True, slots=True)
class CsmsPrice:
    """What the CSMS's profile gives the EV about prices (EXI objects, ready to send).

    `signature20` / `signature2`: the eMSP's header ds:Signature (-20 / -2) over the price
    schedule / the SalesTariff, rebuilt from the profile's digestValue and
    priceScheduleSignature (None: unsigned)."""

    absolute: Any = None  # iso20.AbsolutePriceScheduleType
    price_level: Any = None  # iso20.PriceLevelScheduleType
    sales_tariff: Any = None  # iso2.SalesTariffType
    signature20: Any = None  # iso20.SignatureType
    signature2: Any = None  # iso2.SignatureType

    @property
    def schedule_id(self) -> int | None:
        ps = self.absolute or self.price_level
        return None if ps is None else int(ps.price_schedule_id)


def price_schedule_id(n: int) -> str:
    return f"PS{n}"


def sales_tariff_id(n: int) -> str:
    return f"ST{n}"


# -- checks ------------------------------------------------------------------------------------
def _int(x: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
        raise PriceScheduleError(f"{name} {x!r} out of {lo}..{hi}")
    return x


def _str(x: Any, name: str, max_len: int) -> str:
    if not isinstance(x, str) or len(x) > max_len:
        raise PriceScheduleError(f"{name} is not a string of at most {max_len} characters")
    return x


def _list(x: Any, name: str, max_len: int) -> list[Any]:
    if not isinstance(x, list) or not 1 <= len(x) <= max_len:
        raise PriceScheduleError(f"{name} needs 1..{max_len} entries")
    return x


def _time(x: Any, name: str) -> int:
    try:
        t = dt.datetime.fromisoformat(str(x).replace("Z", "+00:00"))
    except ValueError:
        raise PriceScheduleError(f"{name} is not a date-time") from None
    if t.tzinfo is None:
        raise PriceScheduleError(f"{name} has no time zone")
    seconds = t.timestamp()
    if seconds < 0 or seconds != int(seconds):
        raise PriceScheduleError(f"{name} is not a whole second after 1970")
    return int(seconds)


def _rational(x: Any, name: str) -> iso20.RationalNumberType:
    if not isinstance(x, dict):
        raise PriceScheduleError(f"{name} is not a RationalNumber")
    return iso20.RationalNumberType(exponent=_int(x.get("exponent"), f"{name}.exponent",
                                                  -128, 127),
                                    value=_int(x.get("value"), f"{name}.value", -32768, 32767))


def _opt(x: dict[str, Any], key: str, conv: Any, *args: Any) -> Any:
    return conv(x[key], key, *args) if key in x else None


# -- -20 ---------------------------------------------------------------------------------------
def _price_rule(r: dict[str, Any]) -> iso20.PriceRuleType:
    return iso20.PriceRuleType(
        energy_fee=_rational(r.get("energyFee"), "energyFee"),
        parking_fee=_opt(r, "parkingFee", _rational),
        parking_fee_period=_opt(r, "parkingFeePeriod", _int, 0, UINT32),
        carbon_dioxide_emission=_opt(r, "carbonDioxideEmission", _int, 0, UINT16),
        renewable_generation_percentage=_opt(r, "renewableGenerationPercentage", _int, 0, 100),
        power_range_start=_rational(r.get("powerRangeStart"), "powerRangeStart"),
    )


def _tax_rule(t: dict[str, Any]) -> iso20.TaxRuleType:
    def flag(key: str) -> bool:
        v = t.get(key)
        if not isinstance(v, bool):
            raise PriceScheduleError(f"taxRule {key} is not a boolean")
        return v

    included = t.get("taxIncludedInPrice")
    if included is not None and not isinstance(included, bool):
        raise PriceScheduleError("taxIncludedInPrice is not a boolean")
    return iso20.TaxRuleType(
        tax_rule_id=_int(t.get("taxRuleID", t.get("taxRuleId")), "taxRuleID", 1, UINT32),
        tax_rule_name=_opt(t, "taxRuleName", _str, 80),
        tax_rate=_rational(t.get("taxRate"), "taxRate"),
        tax_included_in_price=included,
        applies_to_energy_fee=flag("appliesToEnergyFee"),
        applies_to_parking_fee=flag("appliesToParkingFee"),
        applies_to_overstay_fee=flag("appliesToOverstayFee"),
        applies_minimum_maximum_cost=flag("appliesToMinimumMaximumCost"),
    )


def _overstay(o: dict[str, Any]) -> iso20.OverstayRuleListType:
    rules = tuple(
        iso20.OverstayRuleType(
            overstay_rule_description=_opt(r, "overstayRuleDescription", _str, 160),
            start_time=_int(r.get("startTime"), "startTime", 0, UINT32),
            overstay_fee=_rational(r.get("overstayFee"), "overstayFee"),
            overstay_fee_period=_int(r.get("overstayFeePeriod"), "overstayFeePeriod", 0, UINT32),
        ) for r in _list(o.get("overstayRule"), "overstayRule", 5))
    return iso20.OverstayRuleListType(
        overstay_time_threshold=_opt(o, "overstayTimeThreshold", _int, 0, UINT32),
        overstay_power_threshold=_opt(o, "overstayPowerThreshold", _rational),
        overstay_rule=rules)


def absolute_price_schedule(p: dict[str, Any]) -> iso20.AbsolutePriceScheduleType:
    """OCPP 2.1 AbsolutePriceScheduleType -> -20 AbsolutePriceSchedule (raises
    PriceScheduleError for what the -20 schema cannot carry)."""
    # the `ocpp` library's case conversion turns priceScheduleID into priceScheduleId
    sid = _int(p.get("priceScheduleID", p.get("priceScheduleId")), "priceScheduleID", 1, UINT32)
    stacks = tuple(
        iso20.PriceRuleStackType(
            duration=_int(s.get("duration"), "priceRuleStack.duration", 0, UINT32),
            price_rule=tuple(_price_rule(r) for r in _list(s.get("priceRule"), "priceRule", 8)))
        for s in _list(p.get("priceRuleStacks"), "priceRuleStacks", 1024))
    taxes = None
    if "taxRules" in p:
        taxes = iso20.TaxRuleListType(
            tax_rule=tuple(_tax_rule(t) for t in _list(p["taxRules"], "taxRules", 10)))
    services = None
    if "additionalSelectedServices" in p:
        services = iso20.AdditionalServiceListType(additional_service=tuple(
            iso20.AdditionalServiceType(service_name=_str(a.get("serviceName"), "serviceName", 80),
                                        service_fee=_rational(a.get("serviceFee"), "serviceFee"))
            for a in _list(p["additionalSelectedServices"], "additionalSelectedServices", 5)))
    return iso20.AbsolutePriceScheduleType(
        id=price_schedule_id(sid),
        time_anchor=_time(p.get("timeAnchor"), "timeAnchor"),
        price_schedule_id=sid,
        price_schedule_description=_opt(p, "priceScheduleDescription", _str, 160),
        currency=_str(p.get("currency"), "currency", 3),
        language=_str(p.get("language"), "language", 3),
        price_algorithm=_str(p.get("priceAlgorithm"), "priceAlgorithm", 255),
        minimum_cost=_opt(p, "minimumCost", _rational),
        maximum_cost=_opt(p, "maximumCost", _rational),
        tax_rules=taxes,
        price_rule_stacks=iso20.PriceRuleStackListType(price_rule_stack=stacks),
        overstay_rules=_overstay(p["overstayRuleList"]) if "overstayRuleList" in p else None,
        additional_selected_services=services,
    )


def price_level_schedule(p: dict[str, Any]) -> iso20.PriceLevelScheduleType:
    """OCPP 2.1 PriceLevelScheduleType -> -20 PriceLevelSchedule."""
    sid = _int(p.get("priceScheduleId"), "priceScheduleId", 1, UINT32)
    levels = _int(p.get("numberOfPriceLevels"), "numberOfPriceLevels", 0, UINT8)
    entries = tuple(
        iso20.PriceLevelScheduleEntryType(
            duration=_int(e.get("duration"), "priceLevelScheduleEntry.duration", 0, UINT32),
            price_level=_int(e.get("priceLevel"), "priceLevel", 0, UINT8))
        for e in _list(p.get("priceLevelScheduleEntries"), "priceLevelScheduleEntries", 1024))
    if any(e.price_level >= max(1, levels) for e in entries):
        raise PriceScheduleError("priceLevel beyond numberOfPriceLevels")
    return iso20.PriceLevelScheduleType(
        id=price_schedule_id(sid),
        time_anchor=_time(p.get("timeAnchor"), "timeAnchor"),
        price_schedule_id=sid,
        price_schedule_description=_opt(p, "priceScheduleDescription", _str, 160),
        number_of_price_levels=levels,
        price_level_schedule_entries=iso20.PriceLevelScheduleEntryListType(
            price_level_schedule_entry=entries),
    )


# -- -2 ----------------------------------------------------------------------------------------
_COST_KINDS = {"RelativePricePercentage": "relativePricePercentage",
               "RenewableGenerationPercentage": "RenewableGenerationPercentage",
               "CarbonDioxideEmission": "CarbonDioxideEmission"}


def _start_value(x: Any) -> iso2.PhysicalValueType:
    """ConsumptionCost startValue (Wh): only values -2 holds exactly (value * 10^m)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise PriceScheduleError("startValue is not a number")
    for m in range(0, 4):
        v = x / 10**m
        if v == int(v) and -32768 <= v <= 32767:
            return iso2.PhysicalValueType(multiplier=m, unit=iso2.unitSymbolType("Wh"),
                                          value=int(v))
    raise PriceScheduleError(f"startValue {x} does not fit a -2 PhysicalValue")


def _entry(e: dict[str, Any]) -> iso2.SalesTariffEntryType:
    rti = e.get("relativeTimeInterval")
    if not isinstance(rti, dict):
        raise PriceScheduleError("salesTariffEntry without relativeTimeInterval")
    costs = tuple(
        iso2.ConsumptionCostType(
            start_value=_start_value(c.get("startValue")),
            cost=tuple(
                iso2.CostType(
                    cost_kind=iso2.costKindType(_kind(k.get("costKind"))),
                    amount=_int(k.get("amount"), "amount", 0, UINT32),
                    amount_multiplier=_opt(k, "amountMultiplier", _int, -3, 3))
                for k in _list(c.get("cost"), "cost", 3)))
        for c in (_list(e["consumptionCost"], "consumptionCost", 3)
                  if "consumptionCost" in e else ()))
    return iso2.SalesTariffEntryType(
        relative_time_interval=iso2.RelativeTimeIntervalType(
            start=_int(rti.get("start"), "relativeTimeInterval.start", 0, REL_START_MAX),
            duration=_opt(rti, "duration", _int, 0, REL_DURATION_MAX)),
        e_price_level=_opt(e, "ePriceLevel", _int, 0, UINT8),
        consumption_cost=costs)


def _kind(k: Any) -> str:
    if k not in _COST_KINDS:
        raise PriceScheduleError(f"costKind {k!r}")
    return _COST_KINDS[k]


def sales_tariff(t: dict[str, Any]) -> iso2.SalesTariffType:
    """OCPP 2.1 SalesTariffType -> -2 SalesTariff (SalesTariffID 1..255)."""
    tid = _int(t.get("id"), "salesTariff.id", 1, UINT8)
    return iso2.SalesTariffType(
        id=sales_tariff_id(tid),
        sales_tariff_id=tid,
        sales_tariff_description=_opt(t, "salesTariffDescription", _str, 32),
        num_e_price_levels=_opt(t, "numEPriceLevels", _int, 0, UINT8),
        sales_tariff_entry=tuple(_entry(e) for e in _list(t.get("salesTariffEntry"),
                                                          "salesTariffEntry", 1024)),
    )


def check_schedule(schedule: dict[str, Any]) -> CsmsPrice:
    """The price parts of one OCPP ChargingSchedule, converted (unsigned); raises
    PriceScheduleError. OCPP: a -20 session gets absolutePriceSchedule or priceLevelSchedule,
    not both."""
    if not isinstance(schedule, dict):
        raise PriceScheduleError("chargingSchedule is not an object")
    if "absolutePriceSchedule" in schedule and "priceLevelSchedule" in schedule:
        raise PriceScheduleError("absolutePriceSchedule and priceLevelSchedule together")
    try:
        price = CsmsPrice(
            absolute=(absolute_price_schedule(schedule["absolutePriceSchedule"])
                      if "absolutePriceSchedule" in schedule else None),
            price_level=(price_level_schedule(schedule["priceLevelSchedule"])
                         if "priceLevelSchedule" in schedule else None),
            sales_tariff=(sales_tariff(schedule["salesTariff"])
                          if "salesTariff" in schedule else None))
        # the codec's own facets (ranges, lengths, counts) are the final word on "fits"
        for name, value, schema in (("AbsolutePriceSchedule", price.absolute, "iso20"),
                                    ("PriceLevelSchedule", price.price_level, "iso20"),
                                    ("SalesTariff", price.sales_tariff, "iso2")):
            if value is not None:
                exi_codec.encode_fragment(name, value, schema)
    except (AttributeError, TypeError) as exc:  # a list where an object belongs, ...
        raise PriceScheduleError(f"malformed price schedule: {exc}") from None
    except exi_codec.ExiError as exc:
        raise PriceScheduleError(str(exc)) from None
    return price

"""OCPP 2.1 price schedules and sales tariffs of a charging profile (sans-IO): the JSON -> ISO
15118 conversion field by field and through an EXI encode/decode round trip, the schema checks
(out of range: ProfileError, nothing stored), the eMSP's signature rebuilt into a header
Signature that verifies with the eMSP's certificate, a tampered schedule refused, and the
-20 / -2 handlers putting the CSMS's price and signature into their responses.

(../shared/vectors has no ScheduleExchangeRes or SalesTariff with a price: the conversion is
checked against hand-written ISO objects and by round trips instead.)"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

import exi_codec
from certs.iso2_pki import make_iso2_pki
from certs.pnc_pki import make_pnc_pki
from evse.aio.ocpp_prices import PriceCheck
from evse.ocpp.smart_charging import ProfileError, ProfileRejected, ProfileStore
from evse.protocol.csms_prices import CsmsPrice, PriceScheduleError, check_schedule
from evse.security import iso2_signatures
from evse.security.price_signatures import PriceSignatureError, attach_signature
from evse.security.signatures import SignatureError, SignedElement, verify
from exi_codec.schemas import iso2, iso20
from simulators.csms_prices import EXAMPLE_ABSOLUTE_PRICE, EXAMPLE_SALES_TARIFF, priced_profile

R = iso20.RationalNumberType
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, EXAMPLE_ABSOLUTE_PRICE's timeAnchor


def schedule(**prices: Any) -> dict[str, Any]:
    return {"id": 1, "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}], **prices}


def profile(sched: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"id": 3, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": [
                {**sched, "startSchedule": "2026-01-01T00:00:00Z"}], **kw}


def snake_profile() -> dict[str, Any]:
    return {"id": 3, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute", "charging_schedule": [
                {"id": 1, "charging_rate_unit": "W", "start_schedule": "2026-01-01T00:00:00Z",
                 "charging_schedule_period": [{"start_period": 0, "limit": 11000.0}]}]}


def camel(p: dict[str, Any]) -> dict[str, Any]:
    """The simulator's profile as the station sees it (library case conversion round trip)."""
    from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
    out: dict[str, Any] = snake_to_camel_case(camel_to_snake_case(snake_to_camel_case(p)))
    return out


# -- conversion ------------------------------------------------------------------------------
def test_absolute_price_schedule_field_by_field() -> None:
    got = check_schedule(schedule(absolutePriceSchedule=EXAMPLE_ABSOLUTE_PRICE)).absolute
    rule = iso20.PriceRuleType
    assert got == iso20.AbsolutePriceScheduleType(
        id="PS7", time_anchor=int(T0), price_schedule_id=7,
        price_schedule_description="eMSP day tariff", currency="EUR", language="ENG",
        price_algorithm="urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power",
        tax_rules=iso20.TaxRuleListType(tax_rule=(iso20.TaxRuleType(
            tax_rule_id=1, tax_rule_name="VAT", tax_rate=R(exponent=-2, value=19),
            tax_included_in_price=True, applies_to_energy_fee=True,
            applies_to_parking_fee=False, applies_to_overstay_fee=False,
            applies_minimum_maximum_cost=True),)),
        price_rule_stacks=iso20.PriceRuleStackListType(price_rule_stack=(
            iso20.PriceRuleStackType(duration=0, price_rule=(
                rule(energy_fee=R(exponent=-2, value=32), power_range_start=R(exponent=0,
                                                                              value=0)),
                rule(energy_fee=R(exponent=-2, value=45), power_range_start=R(exponent=3,
                                                                              value=50)))),
            iso20.PriceRuleStackType(duration=7200, price_rule=(
                rule(energy_fee=R(exponent=-3, value=185),
                     power_range_start=R(exponent=0, value=0)),)))))


def test_library_case_conversion_of_price_schedule_id_is_accepted() -> None:
    # the `ocpp` library hands the station priceScheduleId / taxRuleId
    p = camel(priced_profile(snake_profile(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE))
    ps = p["chargingSchedule"][0]["absolutePriceSchedule"]
    assert "priceScheduleId" in ps and "priceScheduleID" not in ps
    assert check_schedule(p["chargingSchedule"][0]).absolute.price_schedule_id == 7


def test_round_trip_through_exi_in_schedule_exchange_res() -> None:
    price = check_schedule(schedule(absolutePriceSchedule=EXAMPLE_ABSOLUTE_PRICE))
    res = iso20.ScheduleExchangeRes(
        header=iso20.MessageHeaderType(session_id=b"\x01" * 8, time_stamp=int(T0)),
        response_code=iso20.responseCodeType.OK,
        evse_processing=iso20.processingType.Finished,
        dynamic_se_res_control_mode=iso20.Dynamic_SEResControlModeType(
            absolute_price_schedule=price.absolute))
    back = exi_codec.decode(exi_codec.encode(res), "iso20")
    assert back.dynamic_se_res_control_mode.absolute_price_schedule == price.absolute
    frag = exi_codec.encode_fragment("AbsolutePriceSchedule", price.absolute, "iso20")
    assert exi_codec.decode_fragment(frag, "iso20") == ("AbsolutePriceSchedule",
                                                        price.absolute)


def test_price_level_schedule_and_round_trip() -> None:
    levels = {"timeAnchor": "2026-01-01T00:00:00Z", "priceScheduleId": 9,
              "numberOfPriceLevels": 3, "priceLevelScheduleEntries": [
                  {"duration": 0, "priceLevel": 2}, {"duration": 3600, "priceLevel": 0}]}
    got = check_schedule(schedule(priceLevelSchedule=levels)).price_level
    assert got == iso20.PriceLevelScheduleType(
        id="PS9", time_anchor=int(T0), price_schedule_id=9, number_of_price_levels=3,
        price_level_schedule_entries=iso20.PriceLevelScheduleEntryListType(
            price_level_schedule_entry=(
                iso20.PriceLevelScheduleEntryType(duration=0, price_level=2),
                iso20.PriceLevelScheduleEntryType(duration=3600, price_level=0))))
    frag = exi_codec.encode_fragment("PriceLevelSchedule", got, "iso20")
    assert exi_codec.decode_fragment(frag, "iso20")[1] == got


def test_sales_tariff_field_by_field_and_round_trip() -> None:
    got = check_schedule(schedule(salesTariff=EXAMPLE_SALES_TARIFF)).sales_tariff
    assert got == iso2.SalesTariffType(
        id="ST5", sales_tariff_id=5, sales_tariff_description="eMSP day/night",
        num_e_price_levels=2, sales_tariff_entry=(
            iso2.SalesTariffEntryType(
                relative_time_interval=iso2.RelativeTimeIntervalType(start=0), e_price_level=1),
            iso2.SalesTariffEntryType(
                relative_time_interval=iso2.RelativeTimeIntervalType(start=3600, duration=3600),
                e_price_level=0, consumption_cost=(iso2.ConsumptionCostType(
                    start_value=iso2.PhysicalValueType(multiplier=0,
                                                       unit=iso2.unitSymbolType("Wh"), value=0),
                    cost=(iso2.CostType(cost_kind=iso2.costKindType("relativePricePercentage"),
                                        amount=60),)),))))
    frag = exi_codec.encode_fragment("SalesTariff", got, "iso2")
    assert exi_codec.decode_fragment(frag, "iso2")[1] == got


# -- checks: CallError, nothing stored -------------------------------------------------------
def _bad(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    key = "salesTariff" if path[0] == "st" else "absolutePriceSchedule"
    data = copy.deepcopy(EXAMPLE_SALES_TARIFF if path[0] == "st" else EXAMPLE_ABSOLUTE_PRICE)
    node: Any = data
    for k in path[1:-1]:
        node = node[k]
    node[path[-1]] = value
    return schedule(**{key: data})


BAD = [
    (("ps", "priceScheduleID"), 0),  # numericIDType starts at 1
    (("ps", "currency"), "EURO"),  # -20: 3 characters
    (("ps", "language"), "en-GB"),  # OCPP allows 8, -20 3
    (("ps", "priceRuleStacks", 0, "priceRule", 0, "energyFee"), {"exponent": 0,
                                                                  "value": 40000}),
    (("ps", "priceRuleStacks", 0, "priceRule", 0, "energyFee"), {"exponent": 200, "value": 1}),
    (("ps", "priceRuleStacks", 0, "duration"), -1),
    (("ps", "priceRuleStacks", 0, "priceRule"), []),
    (("ps", "priceRuleStacks", 0, "priceRule"), [
        {"energyFee": {"exponent": 0, "value": 1},
         "powerRangeStart": {"exponent": 0, "value": i}} for i in range(9)]),  # max 8
    (("ps", "timeAnchor"), "yesterday"),
    (("ps", "taxRules", 0, "taxRuleName"), "x" * 81),
    (("st", "id"), 256),  # SAIDType 1..255
    (("st", "salesTariffEntry", 0, "relativeTimeInterval", "start"), 16777215),
    (("st", "salesTariffEntry", 1, "relativeTimeInterval", "duration"), 86401),
    (("st", "salesTariffEntry", 1, "consumptionCost", 0, "cost", 0, "amountMultiplier"), 4),
    (("st", "salesTariffEntry", 1, "consumptionCost", 0, "startValue"), 0.5),
]


@pytest.mark.parametrize(("path", "value"), BAD)
def test_out_of_range_price_is_a_profile_error_and_nothing_is_stored(
        path: tuple[Any, ...], value: Any) -> None:
    with pytest.raises(PriceScheduleError):
        check_schedule(_bad(path, value))
    store = ProfileStore(price_check=PriceCheck())
    with pytest.raises(ProfileError):
        store.set(0, profile(_bad(path, value)), T0)
    assert store.get() == []


def test_absolute_and_level_schedules_together_are_refused() -> None:
    levels = {"timeAnchor": "2026-01-01T00:00:00Z", "priceScheduleId": 9,
              "numberOfPriceLevels": 1, "priceLevelScheduleEntries": [
                  {"duration": 0, "priceLevel": 0}]}
    with pytest.raises(PriceScheduleError):
        check_schedule(schedule(absolutePriceSchedule=EXAMPLE_ABSOLUTE_PRICE,
                                priceLevelSchedule=levels))


def test_price_of_the_profile_in_force() -> None:
    store = ProfileStore(price_check=PriceCheck())
    assert store.price_at(1, T0 + 10) is None
    store.set(0, profile(schedule(absolutePriceSchedule=EXAMPLE_ABSOLUTE_PRICE)), T0)
    price = store.price_at(1, T0 + 10)
    assert isinstance(price, CsmsPrice) and price.schedule_id == 7
    assert price.signature20 is None  # unsigned
    assert store.price_at(1, T0 - 10) is None  # not started yet
    # a higher stack level without prices wins: no CSMS price then
    store.set(0, {**profile(schedule()), "id": 4, "stackLevel": 1}, T0)
    assert store.price_at(1, T0 + 10) is None
    store.clear(profile_id=4)
    assert store.price_at(1, T0 + 10) is price
    store.clear()
    assert store.price_at(1, T0 + 10) is None


# -- signatures ------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_signed_price_schedule_verifies_with_the_emsp_certificate(algorithm: str) -> None:
    emsp = make_pnc_pki(algorithm).contract.subs[0]  # an MO Sub-CA as the eMSP's signer
    p = camel(priced_profile(snake_profile(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE,
                             signer=emsp.key, signature_id=12))
    events: list[tuple[str, str]] = []
    store = ProfileStore(price_check=PriceCheck(lambda t, i: events.append((t, i))))
    store.set(0, p, T0)
    price = store.price_at(1, T0 + 1)
    sig = price.signature20
    assert sig is not None and sig.id == "Sig12" and not events
    assert sig.signed_info.reference[0].uri == "#PS7"
    verify(sig, [SignedElement("AbsolutePriceSchedule", price.absolute)],
           emsp.cert.public_key())
    # what the EV receives decodes to the same and still verifies
    hdr = iso20.MessageHeaderType(session_id=b"\x02" * 8, time_stamp=1, signature=sig)
    res = exi_codec.decode(exi_codec.encode(iso20.ScheduleExchangeRes(
        header=hdr, response_code=iso20.responseCodeType.OK,
        evse_processing=iso20.processingType.Finished,
        dynamic_se_res_control_mode=iso20.Dynamic_SEResControlModeType(
            absolute_price_schedule=price.absolute))), "iso20")
    verify(res.header.signature, [SignedElement(
        "AbsolutePriceSchedule", res.dynamic_se_res_control_mode.absolute_price_schedule)],
        emsp.cert.public_key())
    other = make_pnc_pki(algorithm).contract.subs[0]
    with pytest.raises(SignatureError):  # another eMSP's key: not its signature
        verify(sig, [SignedElement("AbsolutePriceSchedule", price.absolute)],
               other.cert.public_key())


def test_tampered_price_schedule_is_rejected_with_a_security_event() -> None:
    emsp = make_pnc_pki().contract.subs[0]
    p = camel(priced_profile(snake_profile(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE,
                             signer=emsp.key))
    fee = p["chargingSchedule"][0]["absolutePriceSchedule"]["priceRuleStacks"][1]
    fee["priceRule"][0]["energyFee"]["value"] = 1  # 0.001 instead of 0.185 per kWh
    events: list[tuple[str, str]] = []
    store = ProfileStore(price_check=PriceCheck(lambda t, i: events.append((t, i))))
    with pytest.raises(ProfileRejected, match="digestValue does not match"):
        store.set(0, p, T0)
    assert store.get() == [] and store.price_at(1, T0 + 1) is None
    assert [t for t, _ in events] == ["InvalidPriceScheduleSignature"]


def test_malformed_signature_parts_are_rejected() -> None:
    emsp = make_pnc_pki().contract.subs[0]
    p = camel(priced_profile(snake_profile(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE,
                             signer=emsp.key))
    sched = p["chargingSchedule"][0]
    price = check_schedule(sched)
    with pytest.raises(PriceSignatureError, match="base64"):
        attach_signature(price, {**sched, "digestValue": "not base64!"},
                         p["priceScheduleSignature"])
    with pytest.raises(PriceSignatureError, match="bytes"):  # neither P-521 nor Ed448
        attach_signature(price, sched, base64.b64encode(b"\x01" * 64).decode())
    # a digest without a SignatureValue: nothing is signed, the price goes unsigned
    assert attach_signature(price, sched, None).signature20 is None


def test_signed_sales_tariff_verifies_with_a_p256_emsp_key() -> None:
    emsp = make_iso2_pki().contract.subs[0]
    p = camel(priced_profile(snake_profile(), sales_tariff=EXAMPLE_SALES_TARIFF,
                             signer=emsp.key))
    store = ProfileStore(price_check=PriceCheck())
    store.set(0, p, T0)
    price = store.price_at(1, T0 + 1)
    assert price.signature2.signed_info.reference[0].uri == "#ST5"
    iso2_signatures.verify(price.signature2,
                           [iso2_signatures.element("SalesTariff", price.sales_tariff)],
                           emsp.cert.public_key())
    tampered = copy.deepcopy(p)
    tampered["chargingSchedule"][0]["salesTariff"]["salesTariffEntry"][0]["ePriceLevel"] = 0
    with pytest.raises(ProfileRejected):
        ProfileStore(price_check=PriceCheck()).set(0, tampered, T0)


def test_two_signed_schedules_in_one_profile_are_rejected() -> None:
    emsp = make_pnc_pki().contract.subs[0]
    p = camel(priced_profile(snake_profile(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE,
                             signer=emsp.key))
    second = {**copy.deepcopy(p["chargingSchedule"][0]), "id": 2}
    p["chargingSchedule"].append(second)
    with pytest.raises(ProfileRejected, match="more than one"):
        ProfileStore(price_check=PriceCheck()).set(0, p, T0)


# -- the -20 / -2 responses ------------------------------------------------------------------
def _csms_schedules(price: CsmsPrice, *, bpt: bool) -> Any:
    from evse.protocol.schedules import PowerEntry, PriceRule, PriceSchedule, Schedules
    local = PriceSchedule(rules=(PriceRule(0, 0.30),), schedule_id=7)  # clashes with PS7
    return Schedules(start=0.0, charging=(PowerEntry(3600, 11000.0),),
                     discharging=(PowerEntry(3600, 5000.0),) if bpt else (),
                     price=local, csms_price=price)


@pytest.mark.parametrize("pricing", [True, False])
def test_iso20_scheduled_response_carries_the_csms_price(pricing: bool) -> None:
    from types import SimpleNamespace

    from evse.protocol.iso20.handlers.schedule_exchange import _mode

    price = check_schedule(schedule(absolutePriceSchedule=EXAMPLE_ABSOLUTE_PRICE))
    session = SimpleNamespace(bpt=True, schedule_tuple_id=None)
    mode = _mode(_csms_schedules(price, bpt=True), SimpleNamespace(maximum_supporting_points=24),
                 session, SimpleNamespace(pricing=pricing), SimpleNamespace(timestamp=int(T0)),
                 True, None)
    tup = mode["scheduled_se_res_control_mode"].schedule_tuple[0]
    if not pricing:  # no prices at all on this station: not the CSMS's either
        assert tup.charging_schedule.absolute_price_schedule is None
        return
    assert tup.charging_schedule.absolute_price_schedule == price.absolute
    discharge = tup.discharging_schedule.absolute_price_schedule
    assert discharge is not None and discharge.price_schedule_id not in (7, None)


def test_iso2_sales_tariff_is_the_csms_one_when_it_fits() -> None:
    from types import SimpleNamespace

    from evse.protocol.iso2.handlers.charge_parameters import sa_schedule_list
    from evse.protocol.limits import EvseLimits

    price = check_schedule(schedule(salesTariff=EXAMPLE_SALES_TARIFF))
    inputs = SimpleNamespace(config=SimpleNamespace(pricing=True), charger=SimpleNamespace(
        limits=EvseLimits(max_charge_power=11000.0, max_charge_current=32.0,
                          max_voltage=500.0)))
    got = sa_schedule_list(_csms_schedules(price, bpt=False), inputs, 24)  # type: ignore[arg-type]
    assert got.sa_schedule_tuple[0].sales_tariff == price.sales_tariff
    # the EV takes at most 1 entry: the signed tariff is never cut, the local one goes
    got = sa_schedule_list(_csms_schedules(price, bpt=False), inputs, 1)  # type: ignore[arg-type]
    assert got.sa_schedule_tuple[0].sales_tariff.id == "tariff1"


def test_signature_over_a_schedule_the_ev_never_gets_is_rejected() -> None:
    emsp = make_pnc_pki().contract.subs[0]
    p = camel(priced_profile(snake_profile(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE,
                             signer=emsp.key))
    signed = p["chargingSchedule"][0]
    first = {k: v for k, v in signed.items()
             if k not in ("digestValue", "signatureId", "absolutePriceSchedule")}
    p["chargingSchedule"] = [first, {**signed, "id": 2}]
    with pytest.raises(ProfileRejected, match="never gets"):
        ProfileStore(price_check=PriceCheck()).set(0, p, T0)
    unsigned_first = {**first, "absolutePriceSchedule": EXAMPLE_ABSOLUTE_PRICE}
    p["chargingSchedule"] = [unsigned_first, {**signed, "id": 2}]
    with pytest.raises(ProfileRejected, match="never gets"):
        ProfileStore(price_check=PriceCheck()).set(0, p, T0)


@pytest.mark.parametrize("scheduled", [True, False])
def test_iso20_price_level_schedule_goes_out_in_either_control_mode(scheduled: bool) -> None:
    from types import SimpleNamespace

    from evse.protocol.iso20.handlers.schedule_exchange import _mode

    levels = {"timeAnchor": "2026-01-01T00:00:00Z", "priceScheduleId": 9,
              "numberOfPriceLevels": 3, "priceLevelScheduleEntries": [
                  {"duration": 0, "priceLevel": 2}]}
    price = check_schedule(schedule(priceLevelSchedule=levels))
    session = SimpleNamespace(bpt=False, schedule_tuple_id=None, minimum_soc=None,
                              target_soc=None)
    mode = _mode(_csms_schedules(price, bpt=False), SimpleNamespace(maximum_supporting_points=24),
                 session, SimpleNamespace(pricing=True, mobility_needs_mode=1),
                 SimpleNamespace(timestamp=int(T0)), scheduled, None)
    if scheduled:
        got = mode["scheduled_se_res_control_mode"].schedule_tuple[0].charging_schedule
    else:
        got = mode["dynamic_se_res_control_mode"]
    assert got.price_level_schedule == price.price_level
    assert got.absolute_price_schedule is None  # not both: the CSMS's replaces the local one

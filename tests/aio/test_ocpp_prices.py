"""The CSMS's price schedule reaches the car with the eMSP's signature (OCPP 2.1
absolutePriceSchedule / salesTariff, digestValue, priceScheduleSignature): the CSMS simulator
over a real WebSocket sets a TxDefaultProfile whose price its eMSP signed with a test-PKI MO
key; a simulated -20 car (real SeccServer, TCP) receives the price schedule in
ScheduleExchangeRes and the header Signature, which verifies with the eMSP's certificate after
the EXI round trip; a -2 car receives the SalesTariff and its P-256 signature. A tampered
price is Rejected (security event to the CSMS), an out-of-range one a CallError; neither is
stored."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import OCPPError

from certs.iso2_pki import make_iso2_pki
from certs.pnc_pki import make_pnc_pki
from evse.protocol.csms_prices import check_schedule
from evse.security import iso2_signatures
from evse.security.signatures import SignatureError, SignedElement, verify
from simulators.csms_prices import EXAMPLE_ABSOLUTE_PRICE, EXAMPLE_SALES_TARIFF, priced_profile
from simulators.ev.client import Endpoint, run_session
from simulators.ev.evcc import Evcc
from simulators.ev.iso2_client import drive_iso2
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc
from tests.aio.helpers import HOST, fast_scenario
from tests.aio.test_ocpp_iso2_din import STATION, TX_7KW, ocpp_rig


def tx_default() -> dict[str, Any]:
    return {"id": 1, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{"id": 1, "charging_rate_unit": "W",
                                   "start_schedule": "2020-01-01T00:00:00Z",
                                   "charging_schedule_period": [{"start_period": 0,
                                                                 "limit": 9000.0}]}]}


async def _set(sim: Any, profile: dict[str, Any]) -> Any:
    return await sim.call(STATION, "SetChargingProfile",
                          {"evse_id": 1, "charging_profile": profile})


@pytest.mark.parametrize("name", ["dc", "dc_dynamic"])
async def test_iso20_car_gets_the_signed_price_schedule(tmp_path: Path, name: str) -> None:
    emsp = make_pnc_pki().contract.subs[0]  # the eMSP's signing credential (MO Sub-CA 2)
    profile = priced_profile(tx_default(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE,
                             signer=emsp.key, signature_id=4)
    async with ocpp_rig(tmp_path) as (rig, sim):
        res = await _set(sim, profile)
        assert res.status == "Accepted"
        scenario = fast_scenario(name)
        loop = asyncio.get_running_loop()
        evcc = Evcc(scenario, battery=rig.link(0, dc=True),
                    epoch_offset=time.time() - loop.time())
        report = await asyncio.wait_for(run_session(
            scenario, host=HOST, port=rig.port, evcc=evcc), 60)
        assert report.success, report.summary()
    (price, signature), *_ = evcc.price_schedules
    expected = check_schedule(profile["charging_schedule"][0]).absolute
    assert price == expected  # what the eMSP priced, not the station's local tariff
    assert signature is not None and signature.id == "Sig4"
    assert signature.signed_info.reference[0].uri == f"#{price.id}"
    # the car checks the eMSP's signature over what it decoded off the wire
    verify(signature, [SignedElement("AbsolutePriceSchedule", price)], emsp.cert.public_key())
    tampered = price.replace(currency="USD")
    with pytest.raises(SignatureError):
        verify(signature, [SignedElement("AbsolutePriceSchedule", tampered)],
               emsp.cert.public_key())


async def test_tampered_price_is_rejected_and_reported(tmp_path: Path) -> None:
    emsp = make_pnc_pki().contract.subs[0]
    profile = priced_profile(tx_default(), absolute_price_schedule=EXAMPLE_ABSOLUTE_PRICE,
                             signer=emsp.key)
    sched = profile["charging_schedule"][0]
    sched["absolutePriceSchedule"]["priceRuleStacks"][0]["priceRule"][0]["energyFee"][
        "value"] = 1  # the CSMS (or someone on the way) lowered the eMSP's price
    async with ocpp_rig(tmp_path) as (rig, sim):
        res = await _set(sim, profile)
        assert res.status == "Rejected"
        assert res.status_info["reason_code"] == "InvalidProfile"
        assert "digestValue" in res.status_info["additional_info"]
        got = await sim.call(STATION, "GetChargingProfiles", {
            "request_id": 1, "charging_profile": {"charging_profile_purpose":
                                                  "TxDefaultProfile"}})
        assert got.status == "NoProfiles"  # nothing stored
        async with asyncio.timeout(10):
            while not sim.calls(STATION, "SecurityEventNotification"):
                await asyncio.sleep(0.02)
        (event,) = sim.calls(STATION, "SecurityEventNotification")
        assert event["type"] == "InvalidPriceScheduleSignature"


async def test_out_of_range_price_is_a_call_error(tmp_path: Path) -> None:
    bad = copy.deepcopy(EXAMPLE_ABSOLUTE_PRICE)
    bad["language"] = "en-GB"  # OCPP allows 8 characters, -20's Language 3
    async with ocpp_rig(tmp_path) as (rig, sim):
        with pytest.raises(OCPPError) as err:
            await _set(sim, priced_profile(tx_default(), absolute_price_schedule=bad))
        assert err.value.code == "PropertyConstraintViolation"
        got = await sim.call(STATION, "GetChargingProfiles", {
            "request_id": 2, "charging_profile": {"charging_profile_purpose":
                                                  "TxDefaultProfile"}})
        assert got.status == "NoProfiles"


async def test_iso2_car_gets_the_signed_sales_tariff(tmp_path: Path) -> None:
    emsp = make_iso2_pki().contract.subs[0]  # -2: P-256
    profile = priced_profile(tx_default(), sales_tariff=EXAMPLE_SALES_TARIFF, signer=emsp.key)
    async with ocpp_rig(tmp_path) as (rig, sim):
        res = await _set(sim, profile)
        assert res.status == "Accepted"
        await asyncio.sleep(0.1)
        backend = rig.connector().backend
        ev = Iso2Evcc(dataclasses.replace(ISO2_SCENARIOS["iso2_dc"], loops=20),
                      battery=backend.ev_battery,
                      on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                           closed))
        run = await asyncio.wait_for(drive_iso2(ev, Endpoint(HOST, rig.port),
                                                response_timeout=5.0), 30)
        assert run.success, run.summary()
    (tariff, signature), *_ = ev.sales_tariffs
    assert tariff == check_schedule(profile["charging_schedule"][0]).sales_tariff
    assert tariff.id == "ST5" and [e.e_price_level for e in tariff.sales_tariff_entry] == [1, 0]
    assert signature is not None
    iso2_signatures.verify(signature, [iso2_signatures.element("SalesTariff", tariff)],
                           emsp.cert.public_key())


async def test_mid_session_v2x_profile_brings_its_signed_tariff_on_renegotiation(
        tmp_path: Path) -> None:
    """The simulator's operator profile mid-session (TxProfile, 7 kW) carries a signed
    SalesTariff: the -2 car's renegotiated SAScheduleList has it, with the signature."""
    emsp = make_iso2_pki().contract.subs[0]
    mid = priced_profile(TX_7KW, sales_tariff=EXAMPLE_SALES_TARIFF, signer=emsp.key)
    async with ocpp_rig(tmp_path, profile_on_start=mid, profile_delay=0.3) as (rig, sim):
        res = await _set(sim, tx_default())  # 9 kW, no price: the local tariff at first
        assert res.status == "Accepted"
        await asyncio.sleep(0.1)
        backend = rig.connector().backend
        ev = Iso2Evcc(dataclasses.replace(ISO2_SCENARIOS["iso2_dc"], loops=100_000),
                      battery=backend.ev_battery,
                      on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                           closed))
        task = asyncio.create_task(drive_iso2(ev, Endpoint(HOST, rig.port),
                                              response_timeout=5.0))
        async with asyncio.timeout(20):
            while len(ev.sales_tariffs) < 2:
                await asyncio.sleep(0.05)
        rig.server.stop_session("1")
        run = await asyncio.wait_for(task, 20)
        assert run.success, run.summary()
        assert sim.profile_answers == ["Accepted"]
    (first, first_sig), (second, second_sig) = ev.sales_tariffs[:2]
    assert first is not None and first.id != "ST5" and first_sig is None  # local, unsigned
    assert second.id == "ST5" and second_sig is not None
    iso2_signatures.verify(second_sig, [iso2_signatures.element("SalesTariff", second)],
                           emsp.cert.public_key())

"""ChargeParameterDiscovery: the EV's limits, ours, and the SAScheduleList.

The PMax schedule comes from the station's energy policy (`SeccConfig.schedule_provider`,
as -20's ScheduleExchange uses it); a provider that is not ready yet (None) gets
EVSEProcessing=Ongoing, a failing one the default schedule and a ReportWarning. With
`SeccConfig.pricing` and a price schedule, a SalesTariff goes with it: -2 has no absolute
prices, so the energy fees become EPriceLevels (1 = cheapest).

Real cars repeat ChargeParameterDiscovery (also while we answer Ongoing) and send values
outside the XSD's ranges: we re-read the limits each time and cap everything to ours.
"""

from __future__ import annotations

from typing import Any

from evse.protocol.config import ControlMode, ServiceId
from evse.protocol.errors import WrongChargeParameter
from evse.protocol.events import Effect, EnergyServiceSelected, EvLimitsReported, ReportWarning
from evse.protocol.iso2.errors import WrongEnergyTransferMode
from evse.protocol.iso2.handlers.common import (
    FINISHED,
    OK,
    ONGOING,
    HandlerResult,
    Inputs,
    ac_evse_status,
    dc_evse_status,
)
from evse.protocol.iso2.handlers.services import energy_transfer_modes
from evse.protocol.iso2.session import Iso2Session
from evse.protocol.iso2.values import opt_si, physical, si
from evse.protocol.limits import EvLimits, EvseLimits, cap
from evse.protocol.schedules import (
    PowerEntry,
    PriceSchedule,
    ScheduleRequest,
    Schedules,
    flat_schedules,
)
from exi_codec.schemas import iso2

SA_SCHEDULE_TUPLE_ID = 1
MAX_PMAX_ENTRIES = 1024  # PMaxScheduleEntry maxOccurs
_PHASES = {"AC_single_phase_core": 1, "AC_three_phase_core": 3}


def _dc_ev(p: Any) -> EvLimits:
    volts = si(p.ev_maximum_voltage_limit)
    amps = si(p.ev_maximum_current_limit)
    power = opt_si(p.ev_maximum_power_limit)
    if volts <= 0 or amps < 0 or (power is not None and power < 0):
        raise WrongChargeParameter("EV maximum voltage, current or power out of range")
    return EvLimits(
        max_charge_power=power if power is not None else volts * amps,
        max_charge_current=amps,
        max_voltage=volts,
        min_voltage=0.0,
        target_soc=p.full_soc,
    )


def _ac_ev(p: Any, phases: int, limits: EvseLimits) -> EvLimits:
    amps = si(p.ev_max_current)
    if amps < 0 or si(p.ev_max_voltage) <= 0:
        raise WrongChargeParameter("EV maximum current or voltage out of range")
    # the EV's power at the station's nominal phase voltage on the phases it uses
    return EvLimits(max_charge_power=amps * limits.nominal_voltage * phases,
                    min_charge_power=max(0.0, si(p.ev_min_current)) * limits.nominal_voltage)


def _check_dc(ev: EvLimits, limits: EvseLimits) -> None:
    assert ev.max_voltage is not None
    if ev.max_voltage < limits.min_voltage:
        raise WrongChargeParameter(
            f"EV maximum voltage {ev.max_voltage} V is below our minimum {limits.min_voltage} V")


def _ask(provider: Any, session: Iso2Session, inputs: Inputs,
         departure: int | None, energy_wh: float | None) -> Schedules | None:
    limits, ev = inputs.charger.limits, session.record.ev
    detailed = getattr(provider, "schedules_for", None)
    if detailed is not None:
        result: Schedules | None = detailed(ScheduleRequest(
            now=inputs.now, timestamp=float(inputs.timestamp), departure_time=departure,
            ev_limits=ev, evse_limits=limits, bpt=False,
            target_soc=ev.target_soc if ev else None, ev_target_energy_wh=energy_wh,
            max_supporting_points=None, evcc_id=session.record.evcc_id))
        return result
    if provider is not None:
        result = provider.schedules(inputs.now, departure, ev, limits, False)
        return result
    return flat_schedules(inputs.now, departure, ev, limits, False)


def fit(entries: tuple[PowerEntry, ...], points: int) -> tuple[PowerEntry, ...]:
    """At most `points` entries: the tail merges into one with its smallest power."""
    if len(entries) <= points:
        return entries
    tail = entries[points - 1:]
    return (*entries[:points - 1], PowerEntry(sum(e.duration for e in tail),
                                              min(e.power for e in tail)))


def _pmax(entries: tuple[PowerEntry, ...], points: int, cap_w: float) -> iso2.PMaxScheduleType:
    items, start = [], 0
    fitted = fit(entries, points) or (PowerEntry(1, 0.0),)
    for i, entry in enumerate(fitted):
        last = i == len(fitted) - 1  # only the last interval states its duration
        items.append(iso2.PMaxScheduleEntryType(
            relative_time_interval=iso2.RelativeTimeIntervalType(
                start=start, duration=entry.duration if last else None),
            p_max=physical(min(entry.power, cap_w), "W"),
        ))
        start += entry.duration
    return iso2.PMaxScheduleType(p_max_schedule_entry=tuple(items))


def _sales_tariff(price: PriceSchedule, points: int) -> iso2.SalesTariffType:
    fees = sorted({rule.energy_fee for rule in price.rules})
    rules = price.rules[:points]
    entries = tuple(
        iso2.SalesTariffEntryType(
            relative_time_interval=iso2.RelativeTimeIntervalType(start=rule.start),
            e_price_level=fees.index(rule.energy_fee) + 1,
        )
        for rule in rules
    )
    return iso2.SalesTariffType(
        id="tariff1", sales_tariff_id=max(1, min(255, price.schedule_id)),
        num_e_price_levels=len(fees), sales_tariff_entry=entries,
    )


def csms_sales_tariff(schedules: Schedules, inputs: Inputs, points: int) -> Any:
    """The CSMS's SalesTariff (OCPP 2.1 salesTariff) when it fits the EV's
    MaxEntriesSAScheduleTuple; it is never cut (that would break the eMSP's signature)."""
    csms = schedules.csms_price if inputs.config.pricing else None
    tariff = getattr(csms, "sales_tariff", None)
    if tariff is None or len(tariff.sales_tariff_entry) > points:
        return None
    return tariff


def sa_schedule_list(schedules: Schedules, inputs: Inputs, points: int) -> iso2.SAScheduleListType:
    limits = inputs.charger.limits
    price = schedules.price if inputs.config.pricing else None
    tariff = csms_sales_tariff(schedules, inputs, points)
    if tariff is None and price and price.rules:
        tariff = _sales_tariff(price, points)
    tuple_ = iso2.SAScheduleTupleType(
        sa_schedule_tuple_id=SA_SCHEDULE_TUPLE_ID,
        p_max_schedule=_pmax(schedules.charging, points, limits.max_charge_power),
        sales_tariff=tariff,
    )
    return iso2.SAScheduleListType(sa_schedule_tuple=(tuple_,))


def _evse_parameters(session: Iso2Session, inputs: Inputs, phases: int) -> dict[str, Any]:
    limits = inputs.charger.limits
    if session.energy == "ac":
        amps = cap(limits.max_charge_current,
                   limits.max_charge_power / (limits.nominal_voltage * phases))
        return {"ac_evse_charge_parameter": iso2.AC_EVSEChargeParameterType(
            ac_evse_status=ac_evse_status(session, inputs),
            evse_nominal_voltage=physical(limits.nominal_voltage, "V"),
            evse_max_current=physical(amps, "A"),
        )}
    return {"dc_evse_charge_parameter": iso2.DC_EVSEChargeParameterType(
        dc_evse_status=dc_evse_status(session, inputs),
        evse_maximum_current_limit=physical(limits.max_charge_current, "A"),
        evse_maximum_power_limit=physical(limits.max_charge_power, "W"),
        evse_maximum_voltage_limit=physical(limits.max_voltage, "V"),
        evse_minimum_current_limit=physical(limits.min_charge_current, "A"),
        evse_minimum_voltage_limit=physical(limits.min_voltage, "V"),
        evse_peak_current_ripple=physical(0.0, "A"),
    )}


def handle_charge_parameter_discovery(
    req: iso2.ChargeParameterDiscoveryReqType, session: Iso2Session, inputs: Inputs
) -> HandlerResult[iso2.ChargeParameterDiscoveryResType]:
    mode = str(req.requested_energy_transfer_mode)
    if mode not in energy_transfer_modes(inputs):
        raise WrongEnergyTransferMode(f"{mode} is not offered")
    energy = "dc" if mode.startswith("DC") else "ac"
    if session.energy is not None and session.energy != energy:
        raise WrongEnergyTransferMode(f"{mode} after {session.transfer_mode}")
    limits = inputs.charger.limits
    phases = _PHASES.get(mode, limits.phases)
    record = session.record
    effects: list[Effect] = []
    if energy == "dc":
        if req.dc_ev_charge_parameter is None:
            raise WrongChargeParameter(f"{mode} needs DC_EVChargeParameter")
        p = req.dc_ev_charge_parameter
        ev = _dc_ev(p)
        _check_dc(ev, limits)
        soc = p.dc_ev_status.evresssoc if p.dc_ev_status is not None else None
        record.present_soc = None if soc is None else max(0, min(100, int(soc)))
        energy_wh = opt_si(p.ev_energy_request)
        capacity = opt_si(p.ev_energy_capacity)
        record.battery_capacity_wh = capacity if capacity and capacity > 0 else None
    else:
        if req.ac_ev_charge_parameter is None:
            raise WrongChargeParameter(f"{mode} needs AC_EVChargeParameter")
        p = req.ac_ev_charge_parameter
        ev = _ac_ev(p, phases, limits)
        energy_wh = opt_si(p.e_amount)
    if session.transfer_mode is None:
        service = ServiceId.DC if energy == "dc" else ServiceId.AC
        record.service = service
        record.control_mode = ControlMode.SCHEDULED
        effects.append(EnergyServiceSelected(int(service), int(ControlMode.SCHEDULED), False))
    session.transfer_mode = mode
    record.ev = ev
    effects.append(EvLimitsReported(ev))
    departure = p.departure_time
    record.departure_at = inputs.now + departure if departure is not None else None
    points = min(MAX_PMAX_ENTRIES, max(1, req.max_entries_sa_schedule_tuple or MAX_PMAX_ENTRIES))
    try:
        schedules = _ask(inputs.config.schedule_provider, session, inputs, departure, energy_wh)
        if schedules is None:  # the policy is not ready: Ongoing, the EV asks again
            res = iso2.ChargeParameterDiscoveryResType(
                response_code=OK, evse_processing=ONGOING,
                **_evse_parameters(session, inputs, phases))
            return res, effects
        schedule_list = sa_schedule_list(schedules, inputs, points)
    except Exception as exc:  # a policy failure never fails the session: default schedule
        effects.append(ReportWarning("energy_policy", "energy policy failed in "
                                     f"ChargeParameterDiscovery, default schedule: {exc!r}"))
        schedules = flat_schedules(inputs.now, departure, ev, limits, False)
        schedule_list = sa_schedule_list(schedules, inputs, points)
    record.schedules = schedules
    record.bound_version = inputs.charger.bound_version  # this schedule knows the bound
    record.schedule_tuple_id = session.sa_schedule_tuple_id = SA_SCHEDULE_TUPLE_ID
    if csms_sales_tariff(schedules, inputs, points) is not None and \
            schedules.csms_price.signature2 is not None:
        # the eMSP's signature over the SalesTariff: the header Signature, its Reference
        # "#ST<id>" (OCPP 2.1 priceScheduleSignature)
        session.response_signature = schedules.csms_price.signature2
    res = iso2.ChargeParameterDiscoveryResType(
        response_code=OK,
        evse_processing=FINISHED,
        sa_schedule_list=schedule_list,
        **_evse_parameters(session, inputs, phases),
    )
    return res, effects

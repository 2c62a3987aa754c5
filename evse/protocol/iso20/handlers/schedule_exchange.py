"""ScheduleExchange: schedules (Scheduled mode) or departure/SOC and price (Dynamic mode).

The policy comes from `config.schedule_provider` (SI units); this module only converts it.
Charging schedule entries are max charge powers (>= 0), discharging schedule entries are
discharge powers as negative values (sign convention: negative = the EV discharges).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from evse.protocol.config import ControlMode, SeccConfig
from evse.protocol.errors import Failed
from evse.protocol.events import Effect, ReportWarning
from evse.protocol.iso20.handlers.common import HandlerResult, Inputs, rational, res_header
from evse.protocol.schedules import (
    PowerEntry,
    PriceSchedule,
    ScheduleRequest,
    Schedules,
    flat_schedules,
)
from evse.protocol.session import Session
from evse.protocol.units import opt_from_rational
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import ScheduleExchangeReq, ScheduleExchangeRes

SCHEDULE_TUPLE_ID = 1


def fit(entries: tuple[PowerEntry, ...], points: int) -> tuple[PowerEntry, ...]:
    """At most `points` entries: the tail is merged into one entry with its smallest power
    (conservative: never above any merged limit) so the schedule still spans the whole time."""
    if len(entries) <= points:
        return entries
    tail = entries[points - 1 :]
    merged = PowerEntry(sum(e.duration for e in tail), min(e.power for e in tail))
    return (*entries[: points - 1], merged)


def _power_schedule(entries: tuple[PowerEntry, ...], sign: int, anchor: int, points: int) -> Any:
    items = tuple(
        iso20.PowerScheduleEntryType(duration=e.duration, power=rational(iso20, sign * e.power))
        for e in fit(entries, points)
    ) or (iso20.PowerScheduleEntryType(duration=0, power=rational(iso20, 0.0)),)
    return iso20.PowerScheduleType(
        time_anchor=anchor,
        power_schedule_entries=iso20.PowerScheduleEntryListType(power_schedule_entry=items),
    )


def _price(price: PriceSchedule, anchor: int) -> Any:
    stacks = tuple(
        iso20.PriceRuleStackType(
            duration=rule.start,
            price_rule=(
                iso20.PriceRuleType(
                    energy_fee=rational(iso20, rule.energy_fee),
                    power_range_start=rational(iso20, 0.0),
                ),
            ),
        )
        for rule in price.rules
    )
    return iso20.AbsolutePriceScheduleType(
        time_anchor=anchor,
        price_schedule_id=price.schedule_id,
        currency=price.currency,
        language=price.language,
        price_algorithm=price.price_algorithm,
        price_rule_stacks=iso20.PriceRuleStackListType(price_rule_stack=stacks),
    )


def _scheduled(schedules: Schedules, bpt: bool, anchor: int, points: int, price: Any,
               discharge_price: Any, price_level: Any = None) -> Any:
    charging = iso20.ChargingScheduleType(
        power_schedule=_power_schedule(schedules.charging, 1, anchor, points),
        absolute_price_schedule=price,
        price_level_schedule=price_level,
    )
    discharging = None
    if bpt:
        discharging = iso20.ChargingScheduleType(
            power_schedule=_power_schedule(schedules.discharging, -1, anchor, points),
            absolute_price_schedule=discharge_price,
        )
    tuple_ = iso20.ScheduleTupleType(
        schedule_tuple_id=SCHEDULE_TUPLE_ID,
        charging_schedule=charging,
        discharging_schedule=discharging,
    )
    return iso20.Scheduled_SEResControlModeType(schedule_tuple=(tuple_,))


def _dynamic(session: Session, config: SeccConfig, departure: int | None, price: Any,
             price_level: Any = None) -> Any:
    """Departure time and SOC targets only when the SECC provides mobility needs (mode 2);
    with the EV providing them (mode 1) they are the EV's to state, not ours to echo."""
    if config.mobility_needs_mode == 1:
        return iso20.Dynamic_SEResControlModeType(absolute_price_schedule=price,
                                                  price_level_schedule=price_level)
    return iso20.Dynamic_SEResControlModeType(
        departure_time=departure,
        minimum_soc=session.minimum_soc,
        target_soc=session.target_soc,
        absolute_price_schedule=price,
        price_level_schedule=price_level,
    )


def _request(req: ScheduleExchangeReq, ev_mode: Any, session: Session, inputs: Inputs,
             scheduled: bool) -> ScheduleRequest:
    target_soc = session.target_soc
    if target_soc is None and session.ev is not None:
        target_soc = session.ev.target_soc
    return ScheduleRequest(
        now=inputs.now,
        timestamp=float(inputs.timestamp),
        departure_time=ev_mode.departure_time,
        ev_limits=session.ev,
        evse_limits=inputs.charger.limits,
        bpt=session.bpt,
        dynamic=not scheduled,
        minimum_soc=session.minimum_soc,
        target_soc=target_soc,
        ev_target_energy_wh=opt_from_rational(getattr(ev_mode, "ev_target_energy_request", None)),
        ev_maximum_energy_wh=opt_from_rational(
            getattr(ev_mode, "ev_maximum_energy_request", None)),
        ev_minimum_energy_wh=opt_from_rational(
            getattr(ev_mode, "ev_minimum_energy_request", None)),
        max_supporting_points=int(req.maximum_supporting_points) if scheduled else None,
        evcc_id=session.evcc_id,
    )


def _ask(provider: Any, req: ScheduleExchangeReq, ev_mode: Any, session: Session,
         inputs: Inputs, scheduled: bool, departure: int | None) -> Schedules | None:
    limits = inputs.charger.limits
    detailed = getattr(provider, "schedules_for", None)
    if detailed is not None:
        result: Schedules | None = detailed(
            _request(req, ev_mode, session, inputs, scheduled))
        return result
    if provider is not None:
        result = provider.schedules(inputs.now, departure, session.ev, limits, session.bpt)
        return result
    return flat_schedules(inputs.now, departure, session.ev, limits, session.bpt)


def _ongoing(hdr: Any, scheduled: bool, inputs: Inputs) -> ScheduleExchangeRes:
    placeholder = Schedules(start=inputs.now, charging=())
    mode: dict[str, Any] = {"scheduled_se_res_control_mode": _scheduled(
        placeholder, False, inputs.timestamp, 1, None, None)}
    if not scheduled:
        mode = {"dynamic_se_res_control_mode": iso20.Dynamic_SEResControlModeType()}
    return ScheduleExchangeRes(
        header=hdr,
        response_code=iso20.responseCodeType.OK,
        evse_processing=iso20.processingType.Ongoing,
        **mode,
    )


def _mode(schedules: Schedules, req: ScheduleExchangeReq, session: Session,
          config: SeccConfig, inputs: Inputs, scheduled: bool,
          departure: int | None) -> dict[str, Any]:
    """The control-mode part of the response (raises on values the message cannot carry)."""
    anchor = inputs.timestamp
    price = _price(schedules.price, anchor) if config.pricing and schedules.price else None
    price_level = None
    csms_id = None
    csms = schedules.csms_price if config.pricing else None
    if csms is not None and csms.schedule_id is not None:
        # the CSMS's (eMSP's) price schedule exactly as converted: its digest is signed
        price, price_level, csms_id = csms.absolute, csms.price_level, csms.schedule_id
    if not scheduled:
        return {"dynamic_se_res_control_mode": _dynamic(session, config, departure, price,
                                                        price_level)}
    session.schedule_tuple_id = SCHEDULE_TUPLE_ID
    points = int(req.maximum_supporting_points)
    # The discharging schedule carries its own price schedule (a distinct id): EVs such
    # as Josev reject a schedule without one, as for charging.
    discharge = schedules.discharge_price or schedules.price
    discharge_price = None
    if config.pricing and discharge is not None:
        if schedules.discharge_price is None or csms_id == discharge.schedule_id:
            taken = {csms_id, schedules.price.schedule_id if schedules.price else None}
            new_id = discharge.schedule_id + 1
            while new_id in taken:
                new_id += 1
            discharge = replace(discharge, schedule_id=new_id)
        discharge_price = _price(discharge, anchor)
    return {"scheduled_se_res_control_mode": _scheduled(
        schedules, session.bpt, anchor, points, price, discharge_price, price_level)}


def handle_schedule_exchange(
    req: ScheduleExchangeReq, session: Session, inputs: Inputs
) -> HandlerResult[ScheduleExchangeRes]:
    scheduled = session.control_mode == ControlMode.SCHEDULED
    ev_mode = req.scheduled_se_req_control_mode if scheduled else req.dynamic_se_req_control_mode
    if ev_mode is None:
        raise Failed(f"ScheduleExchangeReq does not match the selected {session.control_mode!r}")
    departure = ev_mode.departure_time
    if not scheduled:
        session.minimum_soc = ev_mode.minimum_soc
        session.target_soc = ev_mode.target_soc
    session.departure_at = inputs.now + departure if departure is not None else None
    config = inputs.config
    limits = inputs.charger.limits
    provider = config.schedule_provider
    hdr = res_header(iso20, session, inputs)
    warnings: list[Effect] = []
    try:
        schedules = _ask(provider, req, ev_mode, session, inputs, scheduled, departure)
        if schedules is None:  # the provider is not ready: answer Ongoing with placeholders
            return _ongoing(hdr, scheduled, inputs), []
        mode = _mode(schedules, req, session, config, inputs, scheduled, departure)
    except Exception as exc:  # any policy failure: the default schedule
        # An energy-policy error never fails a charging session (the station port's
        # GuardedScheduleProvider also reports it; this is the backstop for any provider).
        warnings.append(ReportWarning("energy_policy", "energy policy failed in "
                                      f"ScheduleExchange, default schedule offered: {exc!r}"))
        schedules = flat_schedules(inputs.now, departure, session.ev, limits, session.bpt)
        mode = _mode(schedules, req, session, config, inputs, scheduled, departure)
    session.schedules = schedules
    session.bound_version = inputs.charger.bound_version  # this schedule knows the bound
    csms = schedules.csms_price
    if config.pricing and csms is not None and csms.signature20 is not None:
        # the eMSP's signature over the price schedule: the header Signature, its Reference
        # "#PS<id>" (OCPP 2.1 priceScheduleSignature)
        hdr = hdr.replace(signature=csms.signature20)
    res = ScheduleExchangeRes(
        header=hdr,
        response_code=iso20.responseCodeType.OK,
        evse_processing=iso20.processingType.Finished,
        **mode,
    )
    return res, warnings

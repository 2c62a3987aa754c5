"""The MQTT API, sans-IO: topics, payloads, command validation and dispatch.

Versioned topics (docs/mqtt_api.md has the full reference):

    evse/v1/<station>/availability              "online" / "offline" (retained; last will)
    evse/v1/<station>/<connector>/state         JSON snapshot (retained, on change)
    evse/v1/<station>/<connector>/telemetry     JSON measurements (periodic)
    evse/v1/<station>/<connector>/events        JSON events (session started/stopped, faults)
    evse/v1/<station>/<connector>/cmd/<name>    JSON command with a "request_id"
    evse/v1/<station>/<connector>/reply/<name>  {"request_id": ..., "ok": bool, "error": ...}

Commands: authorize, setpoint, limits, prices, stop, pause, outage. A command is checked completely
(size, JSON, known command, known connector, no unknown fields, types, sane physical and
economic ranges, the control mode) before the charger is touched: any problem gives an error
reply naming it and nothing changes. The charger has the last word: a StationPort method may
raise CommandRejected("why"). Any payload costs bounded CPU and memory: its size is capped
before it is parsed, and numbers with thousands of digits or deep nesting are refused by name.

This module does no I/O: evse/aio/mqtt_bridge.py moves the bytes. Units on the wire: kW, kWh,
V, A, percent, Unix seconds; power and current negative while the EV discharges (DESIGN 5).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from evse.energy.prices import PriceCurve, PriceError, PriceSlot

__all__ = ["API_VERSION", "COMMANDS", "CommandRejected", "ConnectorLimits", "ConnectorState",
           "EvNeeds", "LimitsUpdate", "OutagePort", "Reply", "StationPort", "Topics",
           "event_payload", "handle_command", "state_payload", "telemetry_payload"]

log = logging.getLogger(__name__)

API_VERSION = "v1"
COMMANDS = ("authorize", "limits", "outage", "pause", "prices", "setpoint", "stop")
MAX_PAYLOAD = 256 * 1024  # bytes; a 1024-slot price list fits easily
MAX_PRICE_SLOTS = 1024  # as many as ISO 15118-20 can pass on to the EV
MAX_PRICE = 10.0  # |buy|, |sell| per kWh: beyond any tariff, even at negative-price hours
PRICE_PAST_S = 24 * 3600.0  # price slots may start at most this long before now ...
PRICE_HORIZON_S = 14 * 24 * 3600.0  # ... and end at most this long after now
MIN_PRICE_SLOT_S = 300.0  # 5 min, the shortest market period: bounds the planner's work
MAX_CURRENT_A = 3000.0  # current limits when the charger rates none (MCS: 3000 A)
MAX_REQUEST_ID = 2**53  # integer request ids: exact in every JSON parser
RequestId: TypeAlias = str | int


# -- data the charger provides --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorLimits:
    """Power and current magnitudes (>= 0) in each direction."""

    max_charge_power_w: float
    max_discharge_power_w: float = 0.0
    max_charge_current_a: float | None = None
    max_discharge_current_a: float | None = None


@dataclass(frozen=True, slots=True)
class EvNeeds:
    """What the EV of the running session announced: its departure, SOC window, battery and
    power limits (the `ev` object of the state topic). An aggregator needs them to split a
    fleet request by headroom and departure needs. None: the EV did not say."""

    departure: float | None = None  # Unix seconds
    target_soc: float | None = None  # percent
    minimum_soc: float | None = None  # percent
    capacity_kwh: float | None = None
    energy_to_target_kwh: float | None = None  # the EV's EVTargetEnergyRequest
    max_charge_power_w: float | None = None  # the EV's own limits (now, from the charge loop)
    max_discharge_power_w: float | None = None


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """What the charger reports for one connector (the `state` topic, and the bounds that
    commands are checked against). `rated`: what the hardware can do (bounds of a `limits`
    command); `limits`: what applies now (bounds of a `setpoint`), None = rated."""

    session_state: str  # "idle", "authorizing", "charging", "discharging", "paused", ...
    rated: ConnectorLimits
    limits: ConnectorLimits | None = None
    protocol: str | None = None  # e.g. "ISO15118-20 DC_BPT"
    control_mode: str | None = None  # "Scheduled" / "Dynamic" (-20), None without a session
    session_id: str | None = None
    soc: float | None = None  # percent
    voltage: float | None = None  # V
    current: float | None = None  # A, signed
    power: float | None = None  # W, signed
    energy_in_kwh: float = 0.0  # to the EV, this session
    energy_out_kwh: float = 0.0  # from the EV, this session
    setpoint_w: float | None = None  # the active Dynamic-mode setpoint
    fault: str | None = None
    grid_outage: bool = False  # the station runs islanded (V2H), see the `outage` command
    ev: EvNeeds | None = None  # None without a session

    @property
    def effective_limits(self) -> ConnectorLimits:
        return self.limits if self.limits is not None else self.rated


@dataclass(frozen=True, slots=True)
class LimitsUpdate:
    """A `limits` command: None = unchanged. Magnitudes in W and A."""

    max_charge_power_w: float | None = None
    max_discharge_power_w: float | None = None
    max_charge_current_a: float | None = None
    max_discharge_current_a: float | None = None


class CommandRejected(Exception):
    """Raised by a StationPort method to refuse a command; the message goes in the reply."""


class OutagePort(Protocol):
    """Optional: a station that can run islanded (V2H) takes the `outage` command."""

    def set_outage(self, active: bool, home_load_w: float | None) -> None: ...


class StationPort(Protocol):
    """The charger as the MQTT bridge sees it. Called on the event loop: every method must
    return at once (queue the work; never wait for the power stage or the EV). Raise
    CommandRejected to refuse with a reason; anything else is reported as an internal
    error and logged."""

    def connectors(self) -> Sequence[str]: ...

    def state(self, connector: str) -> ConnectorState: ...

    def authorize(self, connector: str, id_token: str, granted: bool) -> None: ...

    def set_setpoint(self, connector: str, watts: float | None) -> None:
        """Dynamic-mode target power; None hands control back to the energy policy."""

    def set_limits(self, connector: str, limits: LimitsUpdate) -> None: ...

    def set_prices(self, connector: str, prices: PriceCurve) -> None: ...

    def stop(self, connector: str) -> None: ...

    def pause(self, connector: str) -> None: ...


# -- topics ---------------------------------------------------------------------------------


def _check_level(name: str, value: str) -> None:
    if not value or any(c in value for c in "/+#") or "\x00" in value:
        raise ValueError(f"{name} {value!r} is not a valid MQTT topic level")


@dataclass(frozen=True, slots=True)
class Topics:
    station: str
    prefix: str = f"evse/{API_VERSION}"

    def __post_init__(self) -> None:
        _check_level("station", self.station)
        for level in self.prefix.split("/"):
            _check_level("prefix level", level)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.station}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/+/cmd/+"

    def state(self, connector: str) -> str:
        return f"{self.base}/{connector}/state"

    def telemetry(self, connector: str) -> str:
        return f"{self.base}/{connector}/telemetry"

    def events(self, connector: str) -> str:
        return f"{self.base}/{connector}/events"

    def command(self, connector: str, name: str) -> str:
        return f"{self.base}/{connector}/cmd/{name}"

    def reply(self, connector: str, name: str) -> str:
        return f"{self.base}/{connector}/reply/{name}"

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(connector, command name) of a command topic, None for any other topic."""
        head = self.base + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 3 or parts[1] != "cmd" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]


# -- outgoing payloads ----------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """NaN and infinities (a glitching meter) become null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _encode(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON; values JSON cannot express are written as null or as strings, so that a
    payload never fails to encode."""
    return json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False,
                      default=str).encode()


def _kw(w: float | None) -> float | None:
    return None if w is None else round(w / 1000.0, 6)


def _limits_json(lim: ConnectorLimits) -> dict[str, Any]:
    return {"max_charge_power_kw": _kw(lim.max_charge_power_w),
            "max_discharge_power_kw": _kw(lim.max_discharge_power_w),
            "max_charge_current_a": lim.max_charge_current_a,
            "max_discharge_current_a": lim.max_discharge_current_a}


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def state_payload(state: ConnectorState, now: float) -> bytes:
    s = state
    return _encode({
        "ts": now, "session_state": s.session_state, "session_id": s.session_id,
        "protocol": s.protocol, "control_mode": s.control_mode,
        "soc_percent": _finite(s.soc), "voltage_v": _finite(s.voltage),
        "current_a": _finite(s.current), "power_kw": _finite(_kw(s.power)),
        "energy_in_kwh": s.energy_in_kwh, "energy_out_kwh": s.energy_out_kwh,
        "setpoint_kw": _kw(s.setpoint_w), "limits": _limits_json(s.effective_limits),
        "rated": _limits_json(s.rated), "fault": s.fault, "grid_outage": s.grid_outage,
        "ev": None if s.ev is None else _ev_json(s.ev),
    })


def _ev_json(e: EvNeeds) -> dict[str, Any]:
    return {"departure_ts": e.departure, "target_soc_percent": e.target_soc,
            "minimum_soc_percent": e.minimum_soc, "capacity_kwh": e.capacity_kwh,
            "energy_to_target_kwh": e.energy_to_target_kwh,
            "max_charge_power_kw": _kw(e.max_charge_power_w),
            "max_discharge_power_kw": _kw(e.max_discharge_power_w)}


def telemetry_payload(state: ConnectorState, now: float) -> bytes:
    s = state
    return _encode({"ts": now, "soc_percent": _finite(s.soc), "voltage_v": _finite(s.voltage),
                    "current_a": _finite(s.current), "power_kw": _finite(_kw(s.power)),
                    "energy_in_kwh": s.energy_in_kwh, "energy_out_kwh": s.energy_out_kwh})


def event_payload(kind: str, now: float, data: Mapping[str, Any] | None = None) -> bytes:
    """{"ts", "event", ...data}: session_started, session_stopped, fault, ..."""
    body: dict[str, Any] = {"ts": now, "event": kind}
    for k, v in (data or {}).items():
        if k not in body:
            body[k] = v
    return _encode(body)


# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    topic: str
    request_id: RequestId | None
    ok: bool
    error: str | None = None

    def payload(self) -> bytes:
        return _encode({"request_id": self.request_id, "ok": self.ok, "error": self.error})


_Action: TypeAlias = Callable[[StationPort, str], None]  # what a valid command does


class _Invalid(Exception):
    """A command that must be refused; the message names the problem."""


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _number(body: Mapping[str, Any], key: str, *, required: bool = True,
            lo: float = -math.inf, hi: float = math.inf, unit: str = "") -> float | None:
    """The number at `key` as a float within [lo, hi] (else _Invalid naming `key`)."""
    if key not in body:
        if required:
            raise _Invalid(f"{key}: missing")
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{key}: must be a number, got {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(f"{key}: must be a finite number")
    if isinstance(value, int) and abs(value) >= 10**15:  # a JSON integer no float may hold
        raise _Invalid(f"{key}: too large (an integer of {len(str(abs(value)))} digits)")
    if not lo <= value <= hi:
        raise _Invalid(f"{key}: {_fmt_kw(value)} out of range [{_fmt_kw(lo)}, {_fmt_kw(hi)}]"
                       + (f" {unit}" if unit else ""))
    return float(value)


def _fields(body: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in body:
        if key != "request_id" and key not in allowed:
            hint = f" (allowed: {', '.join(allowed)})" if allowed else " (none allowed)"
            raise _Invalid(f"{key}: unexpected field{hint}")


def _fmt_kw(x: float) -> str:
    return f"{x + 0.0:g}"  # + 0.0: no "-0"


def _authorize(body: Mapping[str, Any], state: ConnectorState, now: float | None
               ) -> _Action:
    _fields(body, ("id_token", "granted"))
    token = body.get("id_token")
    if token is None:
        raise _Invalid("id_token: missing")
    if not isinstance(token, str):
        raise _Invalid(f"id_token: must be a string, got {_type_name(token)}")
    if not 1 <= len(token) <= 255:
        raise _Invalid(f"id_token: must have 1-255 characters, got {len(token)}")
    granted = body.get("granted")
    if granted is None:
        raise _Invalid("granted: missing")
    if not isinstance(granted, bool):
        raise _Invalid(f"granted: must be true or false, got {_type_name(granted)}")
    return lambda port, c: port.authorize(c, token, granted)


def _setpoint(body: Mapping[str, Any], state: ConnectorState, now: float | None
              ) -> _Action:
    _fields(body, ("power_kw", "release"))
    if "release" in body:  # {"release": true}: back to the station's energy policy
        if body["release"] is not True:
            raise _Invalid(f"release: must be true, got {_type_name(body['release'])}"
                           if not isinstance(body["release"], bool) else "release: must be true")
        if "power_kw" in body:
            raise _Invalid("setpoint: give either power_kw or release, not both")
        if state.control_mode != "Dynamic":
            mode = state.control_mode or "no session"
            raise _Invalid(f"setpoint: only honoured in Dynamic control mode (now: {mode})")
        return lambda port, c: port.set_setpoint(c, None)
    kw = _number(body, "power_kw")
    assert kw is not None
    lim = state.effective_limits
    lo, hi = -lim.max_discharge_power_w / 1000.0, lim.max_charge_power_w / 1000.0
    if not lo <= kw <= hi:
        raise _Invalid(f"power_kw: {_fmt_kw(kw)} out of range [{_fmt_kw(lo)}, {_fmt_kw(hi)}] "
                       "kW (current limits; negative = discharge)")
    if state.control_mode != "Dynamic":
        mode = state.control_mode or "no session"
        raise _Invalid(f"setpoint: only honoured in Dynamic control mode (now: {mode})")
    watts = kw * 1000.0
    return lambda port, c: port.set_setpoint(c, watts)


_LIMIT_FIELDS = (("max_charge_power_kw", "max_charge_power_w", 1000.0),
                 ("max_discharge_power_kw", "max_discharge_power_w", 1000.0),
                 ("max_charge_current_a", "max_charge_current_a", 1.0),
                 ("max_discharge_current_a", "max_discharge_current_a", 1.0))


def _limits(body: Mapping[str, Any], state: ConnectorState, now: float | None
            ) -> _Action:
    _fields(body, [f[0] for f in _LIMIT_FIELDS])
    values: dict[str, float] = {}
    for wire, attr, scale in _LIMIT_FIELDS:
        value = _number(body, wire, required=False)
        if value is None:
            continue
        if value < 0:
            raise _Invalid(f"{wire}: must be >= 0 (a magnitude), got {_fmt_kw(value)}")
        rated = getattr(state.rated, attr)
        if rated is None:  # a charger that rates no current: still a physical bound
            rated = MAX_CURRENT_A
        if value * scale > rated + 1e-9:
            unit = "kW" if scale == 1000.0 else "A"
            raise _Invalid(f"{wire}: {_fmt_kw(value)} above the rated "
                           f"{_fmt_kw(rated / scale)} {unit}")
        values[attr] = value * scale
    if not values:
        raise _Invalid("limits: give at least one of "
                       + ", ".join(f[0] for f in _LIMIT_FIELDS))
    update = LimitsUpdate(**values)
    return lambda port, c: port.set_limits(c, update)


def _price(body: Mapping[str, Any], key: str) -> float:
    value = _number(body, key, lo=-MAX_PRICE, hi=MAX_PRICE, unit="per kWh")
    assert value is not None
    return value


def _time(body: Mapping[str, Any], key: str, now: float | None) -> float:
    """A slot boundary: Unix seconds within [now - PRICE_PAST_S, now + PRICE_HORIZON_S]."""
    lo, hi = (0.0, 2**32) if now is None else (now - PRICE_PAST_S, now + PRICE_HORIZON_S)
    value = _number(body, key)
    assert value is not None
    if not lo <= value <= hi:
        window = "" if now is None else (f": from {PRICE_PAST_S / 3600:g} h before now to "
                                         f"{PRICE_HORIZON_S / 86400:g} days after")
        raise _Invalid(f"{key}: {value:.12g} outside [{lo:.12g}, {hi:.12g}] (Unix seconds"
                       f"{window})")
    return value


def _prices(body: Mapping[str, Any], state: ConnectorState, now: float | None
            ) -> _Action:
    _fields(body, ("currency", "buy", "sell", "slots"))
    currency = _currency(body)
    if "slots" in body:
        curve = _slot_curve(body, currency, now)
    else:
        curve = PriceCurve.flat(_price(body, "buy"), _price(body, "sell"), currency=currency)
    return lambda port, c: port.set_prices(c, curve)


def _currency(body: Mapping[str, Any]) -> str:
    """The 3-letter currency code (EUR if not given), upper case."""
    currency = body.get("currency", "EUR")
    if not isinstance(currency, str) or not (len(currency) == 3 and currency.isalpha()):
        raise _Invalid(f"currency: must be a 3-letter code, got {currency!r}")
    return currency.upper()


def _slot_curve(body: Mapping[str, Any], currency: str, now: float | None) -> PriceCurve:
    """A price curve of `slots` (instead of flat buy/sell prices)."""
    if "buy" in body or "sell" in body:
        raise _Invalid("prices: give either slots or flat buy/sell prices, not both")
    raw = body["slots"]
    if not isinstance(raw, list) or not raw:
        raise _Invalid("slots: must be a non-empty array")
    if len(raw) > MAX_PRICE_SLOTS:
        raise _Invalid(f"slots: at most {MAX_PRICE_SLOTS} entries, got {len(raw)}")
    slots = tuple(_price_slot(i, item, now) for i, item in enumerate(raw))
    try:
        return PriceCurve(slots, currency)
    except PriceError as exc:
        raise _Invalid(f"slots: {exc}") from None


def _price_slot(i: int, item: Any, now: float | None) -> PriceSlot:
    """Slot `i` of a price curve: start, end (at least MIN_PRICE_SLOT_S later), buy, sell."""
    if not isinstance(item, dict):
        raise _Invalid(f"slots[{i}]: must be an object, got {_type_name(item)}")
    for key in item:
        if key not in ("start", "end", "buy", "sell"):
            raise _Invalid(f"slots[{i}].{key}: unexpected field "
                           "(allowed: start, end, buy, sell)")
    try:
        start, end = (_time(item, k, now) for k in ("start", "end"))
        buy, sell = (_price(item, k) for k in ("buy", "sell"))
    except _Invalid as exc:
        raise _Invalid(f"slots[{i}].{exc}") from None
    if not end > start:
        raise _Invalid(f"slots[{i}].end: must be after start")
    if end - start < MIN_PRICE_SLOT_S:
        raise _Invalid(f"slots[{i}]: {end - start:g} s long, at least "
                       f"{MIN_PRICE_SLOT_S:g} s")
    return PriceSlot(start, end, buy, sell)


MAX_HOME_LOAD_KW = 1000.0


def _outage(body: Mapping[str, Any], state: ConnectorState, now: float | None
            ) -> _Action:
    _fields(body, ("active", "home_load_kw"))
    active = body.get("active")
    if active is None:
        raise _Invalid("active: missing")
    if not isinstance(active, bool):
        raise _Invalid(f"active: must be true or false, got {_type_name(active)}")
    kw = _number(body, "home_load_kw", required=False, lo=0.0, hi=MAX_HOME_LOAD_KW, unit="kW")
    watts = None if kw is None else kw * 1000.0

    def apply(port: StationPort, connector: str) -> None:
        setter = getattr(port, "set_outage", None)
        if setter is None:
            raise CommandRejected("this station cannot run islanded (no V2H)")
        setter(active, watts)

    return apply


def _stop(body: Mapping[str, Any], state: ConnectorState, now: float | None
          ) -> _Action:
    _fields(body, ())
    return lambda port, c: port.stop(c)


def _pause(body: Mapping[str, Any], state: ConnectorState, now: float | None
           ) -> _Action:
    _fields(body, ())
    return lambda port, c: port.pause(c)


_HANDLERS: dict[str, Callable[[Mapping[str, Any], ConnectorState, float | None], _Action]] = {
    "authorize": _authorize, "setpoint": _setpoint, "limits": _limits, "prices": _prices,
    "stop": _stop, "pause": _pause, "outage": _outage,
}


def _request_id(body: Any) -> RequestId | None:
    if isinstance(body, dict):
        rid = body.get("request_id")
        if isinstance(rid, str) and 1 <= len(rid) <= 128:
            return rid
        if isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) <= MAX_REQUEST_ID:
            return rid
    return None


def _parse(payload: bytes) -> Any:
    """The JSON of a payload whose size was checked; _Invalid for anything that is not."""
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Invalid(f"payload: not valid JSON ({exc})") from None
    except RecursionError:  # the C scanner's guard against "[[[[..."
        raise _Invalid("payload: nested too deeply") from None
    except ValueError:  # int_max_str_digits (4300): an integer of thousands of digits
        raise _Invalid("payload: a number has too many digits") from None


def handle_command(topics: Topics, port: StationPort, topic: str,
                   payload: bytes, now: float | None = None) -> Reply | None:
    """Validate a command and, when it is valid, hand it to the port. Returns the reply to
    publish, or None when `topic` is not a command topic of this station. `now` (Unix
    seconds) bounds the times a command may carry; None: only to 1970-2106."""
    parsed = topics.parse_command(topic)
    if parsed is None:
        return None
    connector, name = parsed
    reply_topic = topics.reply(connector, name)
    rid: RequestId | None = None
    try:
        if len(payload) > MAX_PAYLOAD:
            raise _Invalid(f"payload: too large ({len(payload)} bytes, at most {MAX_PAYLOAD})")
        body = _parse(payload)
        if not isinstance(body, dict):
            raise _Invalid(f"payload: must be a JSON object, got {_type_name(body)}")
        rid = _request_id(body)
        handler = _HANDLERS.get(name)
        if handler is None:
            raise _Invalid(f"unknown command {name!r} (known: {', '.join(COMMANDS)})")
        if "request_id" not in body:
            raise _Invalid("request_id: missing")
        if rid is None:
            raise _Invalid("request_id: must be a string of 1-128 characters or an integer "
                           "within +-2^53")
        known = list(port.connectors())
        if connector not in known:
            raise _Invalid(f"connector {connector!r}: unknown (known: {', '.join(known)})")
        state = port.state(connector)
        action = handler(body, state, now)
    except _Invalid as exc:
        return Reply(reply_topic, rid, False, str(exc))
    except Exception as exc:  # the charger's bug must not take the bridge down
        log.exception("StationPort failed to describe connector %s", connector)
        return Reply(reply_topic, rid, False, f"{name}: internal error ({type(exc).__name__})")
    try:
        action(port, connector)
    except CommandRejected as exc:
        return Reply(reply_topic, rid, False, f"{name}: rejected: {exc}")
    except Exception as exc:  # the charger's bug must not take the bridge down
        log.exception("StationPort failed on %s for connector %s", name, connector)
        return Reply(reply_topic, rid, False, f"{name}: internal error ({type(exc).__name__})")
    return Reply(reply_topic, rid, True, None)

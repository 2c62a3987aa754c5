"""Sans-IO EVCC: the simulated EV's side of an ISO 15118-20 session.

The EVCC produces each request from the previous response, the scenario and the battery:

    evcc = Evcc(get_scenario("dc"))
    send(evcc.start(now))                     # supportedAppProtocolReq in a V2GTP frame
    for effect in evcc.receive_data(chunk, now):   # bytes from the SECC, any split
        ...                                   # SendData / Reconnect / Finished / Failed
    evcc.next_deadline(); evcc.handle_timeout(now)   # EV timeouts and message pacing

No sockets, no clock: time enters as `now` (seconds, any monotonic origin; header TimeStamps
are `now + epoch_offset`). Effects:

- `SendData(data)`: write these bytes to the connection.
- `Reconnect(delay)`: the session is paused (SessionStop Pause answered); close the TCP
  connection, open a new one after `delay` seconds and call `start(now)` again.
- `Finished(report)`: the session ended as the scenario wanted; close the connection.
- `Failed(reason, report)`: it did not (FAILED response code, wrong message, timeout, ...).

Flow (DC; AC skips CableCheck, PreCharge and WeldingDetection): supportedAppProtocol,
SessionSetup, AuthorizationSetup, Authorization (EIM, repeated while Ongoing),
ServiceDiscovery, ServiceDetail, ServiceSelection, ChargeParameterDiscovery, ScheduleExchange
(repeated while Ongoing), CableCheck (repeated while Ongoing), PreCharge (until the charger's
voltage is within tolerance, then once with EVProcessing=Finished), PowerDelivery Start,
ChargeLoop (paced by `loop_interval`), PowerDelivery Stop, WeldingDetection, SessionStop.

ChargeParameterDiscovery comes before ScheduleExchange, as ISO 15118-20 orders them (the
SECC needs the EV's limits to build its schedules). Validation: a FAILED* response code, a
response of another type than the request's, a wrong SessionID, a V2GTP/EXI error, a timeout
or a closed connection end the session with `Failed`. Every exchange is recorded
(`messages`: request, response, code, sent/received times) with the states visited.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from evse.protocol.v2gtp import (
    DEFAULT_MAX_PAYLOAD,
    Frame,
    V2GTPError,
    V2GTPReassembler,
)
from exi_codec.errors import ExiError
from exi_codec.schemas import iso20
from simulators.battery import EvBattery
from simulators.ev.battery_link import BatteryLink
from simulators.ev.messages import (
    decode_payload,
    frame,
    maybe_value,
    message_name,
    message_schema,
    parameter_int,
    parameter_value,
    response_name_for,
    value_of,
)
from simulators.ev.pnc import PncCredentials, PncState
from simulators.ev.report import (
    MessageRecord,
    SessionReport,
    TimingViolation,
    judged_on_energy,
)
from simulators.ev.requests import EvRequests, EvseLimits, Schedule, _entries, _first
from simulators.ev.scenarios import ControlMode, EnergyService, ScenarioConfig


class EvState(StrEnum):
    """Where the EVCC is: named after the exchange in progress."""

    IDLE = "Idle"
    SUPPORTED_APP_PROTOCOL = "SupportedAppProtocol"
    SESSION_SETUP = "SessionSetup"
    AUTHORIZATION_SETUP = "AuthorizationSetup"
    AUTHORIZATION = "Authorization"
    CERTIFICATE_INSTALLATION = "CertificateInstallation"
    SERVICE_DISCOVERY = "ServiceDiscovery"
    SERVICE_DETAIL = "ServiceDetail"
    SERVICE_SELECTION = "ServiceSelection"
    CHARGE_PARAMETER_DISCOVERY = "ChargeParameterDiscovery"
    SCHEDULE_EXCHANGE = "ScheduleExchange"
    CABLE_CHECK = "CableCheck"
    PRE_CHARGE = "PreCharge"
    POWER_DELIVERY_START = "PowerDeliveryStart"
    SCHEDULE_RENEGOTIATION = "ScheduleRenegotiation"  # PowerDelivery(ScheduleRenegotiation)
    CHARGE_LOOP = "ChargeLoop"
    POWER_DELIVERY_STOP = "PowerDeliveryStop"
    WELDING_DETECTION = "WeldingDetection"
    SESSION_STOP = "SessionStop"
    PAUSED = "Paused"
    FINISHED = "Finished"
    FAILED = "Failed"


TERMINAL_STATES = frozenset({EvState.FINISHED, EvState.FAILED})


# -- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendData:
    data: bytes
    message: str = ""  # name of the request inside, for logs


@dataclass(frozen=True, slots=True)
class Reconnect:
    delay: float


@dataclass(frozen=True, slots=True)
class Finished:
    report: SessionReport


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    report: SessionReport


Effect = SendData | Reconnect | Finished | Failed


class EvccAbort(Exception):
    """Raised inside the state machine; ends the session with `Failed(reason)`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- internal records ------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    request: str
    expect: str
    schema: str
    state: EvState
    sent_at: float
    deadline: float
    timeout: float
    perf_limit: float
    record: int


@dataclass(slots=True)
class _Scheduled:
    at: float
    state: EvState
    build: Callable[[float], Any]


_LOOP_REQUESTS = ("DC_ChargeLoopReq", "AC_ChargeLoopReq")
_LONG_REQUESTS = ("ServiceDetailReq", "CertificateInstallationReq")
_ONGOING = ("Ongoing", "Ongoing_WaitingForCustomerInteraction")


class Evcc(EvRequests):
    """The EV's ISO 15118-20 state machine (sans-IO). See the module docstring."""

    def __init__(
        self,
        scenario: ScenarioConfig,
        *,
        battery: BatteryLink | EvBattery | None = None,
        epoch_offset: float = 0.0,
        rng: random.Random | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.scenario = scenario
        if battery is None:
            battery = scenario.battery.make()
        self.battery = battery if isinstance(battery, BatteryLink) else BatteryLink(battery)
        self.timeouts = scenario.timeouts
        self.epoch_offset = epoch_offset
        self._rng = rng or random.Random()
        self._max_payload = max_payload
        self._reasm = V2GTPReassembler(max_payload=max_payload)

        self.state = EvState.IDLE
        self.states: list[EvState] = []
        self.messages: list[MessageRecord] = []
        self.warnings: list[str] = []
        self.evse_notifications: list[str] = []
        self._last_notification: str | None = None  # of the latest response
        self.timing_violations: list[TimingViolation] = []
        self.connections = 0
        self.loops = 0
        self.sim_time = 0.0  # simulated seconds since the first PowerDelivery Start
        self.evse_limits = EvseLimits()
        self.schedule: Schedule | None = None
        self.evse_id: str | None = None
        self.protocol: str | None = None
        self.parameter_set_id: int | None = None
        self.service_parameters: dict[str, Any] = {}
        self.meter_info: Any = None
        self.stop_reason: str | None = None
        self.failure: str | None = None
        self.discharge_seen = False

        if scenario.zero_session_id:
            self._session_id = bytes(8)
        else:
            self._session_id = bytes(self._rng.randrange(1, 256) for _ in range(8))
        self._session_established = False
        self._pending: _Pending | None = None
        self._scheduled: _Scheduled | None = None
        self._out: list[Effect] = []
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._setup_deadline: float | None = None
        self._phase_started: float = 0.0
        self._resuming = False
        self._resumed = False
        self._installation_offered = False  # AuthorizationSetupRes CertificateInstallationService
        self._renewing = False  # CertificateInstallation after OK_CertificateExpiresSoon
        self._paused_once = False
        self._session_end = "Terminate"
        self._resume_after_pause = False
        self._terminate_seen = False
        self._stop_requested: str | None = None
        self._last_sim_at: float | None = None
        self._last_loop_sent: float | None = None
        self._ac_power_sent = 0.0
        self._evse_target_power: float | None = None
        self._precharge_target = 0.0
        self._precharge_done = False
        self._welding_done = False
        self._now = 0.0
        self._schedule_received_at = 0.0
        self._channel: str | None = None  # BPT_ChannelSelection in force (Separated channel)
        self._channel_switch = False
        self.renegotiations = 0  # EV-initiated schedule renegotiations completed
        self.schedules_received = 0  # Scheduled: ScheduleExchangeRes with a ScheduleTuple
        # each Finished ScheduleExchangeRes: (the charging price schedule, absolute or price
        # level, or None; the header Signature, e.g. the eMSP's over that price schedule)
        self.price_schedules: list[tuple[Any, Any]] = []
        self._renegotiating = False
        self.pnc: PncState | None = None  # Plug & Charge (scenario.authorization == "PnC")
        if scenario.authorization == "PnC":
            self.pnc = PncState.of(scenario.pnc or PncCredentials())

    # == public API ==========================================================================

    @property
    def session_id(self) -> bytes:
        return self._session_id

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def start(self, now: float) -> bytes:
        """Open a (new) connection: the supportedAppProtocolReq frame to send first.

        Valid at the beginning and after a `Reconnect` effect (pause/resume)."""
        self._now = now
        if self.state is EvState.IDLE:
            self._started_at = now
        elif self.state is EvState.PAUSED:
            self._resuming = True
            self._reasm = V2GTPReassembler(max_payload=self._max_payload)
        else:
            raise RuntimeError(f"start() in state {self.state}")
        self.connections += 1
        self._setup_deadline = now + self.timeouts.communication_setup
        self._send(self._req_sap(now), now, EvState.SUPPORTED_APP_PROTOCOL)
        effects = self._take()
        assert len(effects) == 1 and isinstance(effects[0], SendData)
        return effects[0].data

    def receive_data(self, data: bytes, now: float) -> list[Effect]:
        """Bytes from the SECC (any split of the stream)."""
        self._now = now
        if self.state in TERMINAL_STATES or self.state in (EvState.IDLE, EvState.PAUSED):
            return []
        try:
            for item in self._reasm.frames(data):
                if isinstance(item, V2GTPError):
                    self.warnings.append(f"ignored V2GTP frame: {item}")
                    continue
                self._on_frame(item, now)
                if self._reading_stopped():
                    break
        except V2GTPError as exc:
            self._fail(f"bad V2GTP stream from the SECC: {exc}", now)
        except EvccAbort as exc:
            self._fail(exc.reason, now)
        return self._take()

    def _reading_stopped(self) -> bool:
        return self.state in (EvState.FINISHED, EvState.FAILED, EvState.PAUSED)

    def next_deadline(self) -> float | None:
        """When `handle_timeout` must run next (None: only incoming data matters)."""
        if self.state in TERMINAL_STATES or self.state in (EvState.IDLE, EvState.PAUSED):
            return None
        candidates = []
        if self._pending is not None:
            candidates.append(self._pending.deadline)
        if self._scheduled is not None:
            candidates.append(self._scheduled.at)
        if self._setup_deadline is not None:
            candidates.append(self._setup_deadline)
        return min(candidates) if candidates else None

    def handle_timeout(self, now: float) -> list[Effect]:
        self._now = now
        if self.state in TERMINAL_STATES or self.state in (EvState.IDLE, EvState.PAUSED):
            return []
        try:
            pending = self._pending
            if pending is not None and now >= pending.deadline:
                raise EvccAbort(
                    f"no {pending.expect} within {pending.timeout:g} s "
                    f"(V2G_EVCC_Msg_Timeout) in {pending.state}"
                )
            if self._setup_deadline is not None and now >= self._setup_deadline:
                raise EvccAbort(
                    f"no SessionSetupRes within {self.timeouts.communication_setup:g} s "
                    "(V2G_EVCC_CommunicationSetup_Timeout)"
                )
            scheduled = self._scheduled
            if scheduled is not None and now >= scheduled.at:
                self._scheduled = None
                self._send_built(scheduled.build(now), now, scheduled.state)
        except EvccAbort as exc:
            self._fail(exc.reason, now)
        return self._take()

    def connection_lost(self, now: float) -> list[Effect]:
        """The SECC (or the network) closed the TCP connection."""
        self._now = now
        if self.state in TERMINAL_STATES or self.state in (EvState.IDLE, EvState.PAUSED):
            return []
        if self.scenario.expect_evse_stop and self._terminate_seen:
            self.stop_reason = self.stop_reason or "evse_terminate"
            self._finish(now, note="the charger closed the connection after Terminate")
        else:
            self._fail(f"connection closed by the SECC in {self.state}", now)
        return self._take()

    def abort(self, reason: str, now: float) -> list[Effect]:
        """End the session at once from outside (connect error, user abort): `Failed`."""
        if self.state in TERMINAL_STATES:
            return []
        if self._started_at is None:
            self._started_at = now
        self._fail(reason, now)
        return self._take()

    def request_stop(self, reason: str = "ev_stop") -> None:
        """EV-side stop (the driver): the charge loop ends at its next round."""
        self._stop_requested = reason

    def report(self, now: float | None = None) -> SessionReport:
        end = self._ended_at if self._ended_at is not None else now
        start = self._started_at
        duration = 0.0 if start is None or end is None else end - start
        success = self.state is EvState.FINISHED
        reason = (self.stop_reason or "finished") if success else (self.failure or self.state)
        extra: dict[str, Any] = {
            "sim_time": self.sim_time,
            "discharge_seen": self.discharge_seen,
            "service_parameters": dict(self.service_parameters),
        }
        if self.schedule is not None:
            extra["schedule_tuple_id"] = self.schedule.tuple_id
        if self.pnc is not None:
            extra["authorization"] = "PnC"
            if self.pnc.installed_emaid is not None:
                extra["installed_emaid"] = self.pnc.installed_emaid
            if self.pnc.metering_confirmations:
                extra["metering_confirmations"] = self.pnc.metering_confirmations
        if self.meter_info is not None:
            extra["meter_charged_wh"] = self.meter_info.charged_energy_reading_wh
            extra["meter_discharged_wh"] = self.meter_info.bpt_discharged_energy_reading_wh
        return judged_on_energy(SessionReport(
            scenario=self.scenario.name,
            success=success,
            reason=str(reason),
            states=tuple(str(s) for s in self.states),
            messages=tuple(self.messages),
            energy_charged_wh=self.battery.energy_charged_wh,
            energy_discharged_wh=self.battery.energy_discharged_wh,
            initial_soc=self.battery.initial_soc * 100.0,
            final_soc=self.battery.soc * 100.0,
            loops=self.loops,
            duration=duration,
            session_id=self._session_id.hex().upper() if self._session_established else None,
            evse_id=self.evse_id,
            protocol=self.protocol,
            service_id=int(self.scenario.service),
            parameter_set_id=self.parameter_set_id,
            control_mode=str(self.scenario.control_mode),
            connections=self.connections,
            evse_notifications=tuple(self.evse_notifications),
            warnings=tuple(self.warnings),
            timing_violations=tuple(self.timing_violations),
            extra=extra,
        ), dc=self.scenario.service.is_dc)

    # == plumbing ============================================================================

    def _take(self) -> list[Effect]:
        out, self._out = self._out, []
        return out

    def _enter(self, state: EvState) -> None:
        self.state = state
        if not self.states or self.states[-1] is not state:
            self.states.append(state)

    def _send(self, msg: Any, now: float, state: EvState) -> None:
        name = message_name(msg)
        data = frame(msg)
        self._enter(state)
        t = self.timeouts
        if name in _LOOP_REQUESTS:
            timeout, perf = t.charge_loop, t.performance_loop
        elif name in _LONG_REQUESTS:
            timeout, perf = t.msg_long, t.performance_long
        else:
            timeout, perf = t.msg, t.performance
        self.messages.append(
            MessageRecord(name, None, None, now, None, self.connections, str(state))
        )
        self._pending = _Pending(
            request=name,
            expect=response_name_for(name),
            schema=message_schema(msg),
            state=state,
            sent_at=now,
            deadline=now + timeout,
            timeout=timeout,
            perf_limit=perf,
            record=len(self.messages) - 1,
        )
        self._out.append(SendData(data, name))

    def _send_built(self, built: Any, now: float, state: EvState) -> None:
        """Send what a deferred builder made: a message, or (message, state)."""
        if isinstance(built, tuple) and len(built) == 2 and isinstance(built[1], EvState):
            built, state = built
        self._send(built, now, state)

    def _later(
        self, delay: float, state: EvState, build: Callable[[float], Any], now: float
    ) -> None:
        """Send `build(now)` after `delay` real seconds (at once when delay <= 0)."""
        if delay <= 0:
            self._send_built(build(now), now, state)
        else:
            self._enter(state)
            self._scheduled = _Scheduled(now + delay, state, build)

    def _repeat(
        self, now: float, state: EvState, build: Callable[[float], Any], limit: float, timer: str
    ) -> None:
        """Repeat a request of a phase bounded by `limit` seconds since the phase began."""
        delay = self.scenario.ongoing_interval if state in (
            EvState.AUTHORIZATION, EvState.SCHEDULE_EXCHANGE, EvState.CABLE_CHECK,
            EvState.CERTIFICATE_INSTALLATION,
        ) else self.scenario.precharge_interval
        if now + delay - self._phase_started > limit:
            raise EvccAbort(f"{state} not finished within {limit:g} s ({timer})")
        self._later(delay, state, build, now)

    def _begin_phase(self, now: float, state: EvState, build: Callable[[float], Any]) -> None:
        self._phase_started = now
        self._send(build(now), now, state)

    def _fail(self, reason: str, now: float) -> None:
        if self.state in TERMINAL_STATES:
            return
        self.failure = reason
        self._pending = None
        self._scheduled = None
        self._ended_at = now
        if self.battery.contactors_closed:
            self.battery.set_contactors(False)
        self._enter(EvState.FAILED)
        self._out.append(Failed(reason, self.report(now)))

    def _finish(self, now: float, note: str | None = None) -> None:
        problems = []
        if self.scenario.expect_evse_stop and not self._terminate_seen:
            problems.append("the charger never signalled EVSENotification=Terminate")
        if self.scenario.expect_discharge and not self.discharge_seen:
            problems.append("no discharge happened (expected a V2G phase)")
        if self.scenario.pause_after_loops is not None and not self._resumed:
            problems.append("the session was never paused and resumed")
        if note:
            self.warnings.append(note)
        if problems:
            self._fail("; ".join(problems), now)
            return
        self._pending = None
        self._scheduled = None
        self._ended_at = now
        self._enter(EvState.FINISHED)
        self._out.append(Finished(self.report(now)))

    # == incoming ============================================================================

    def _on_frame(self, fr: Frame, now: float) -> None:
        pending = self._pending
        if pending is None:
            raise EvccAbort(
                f"unsolicited V2GTP frame (type {int(fr.payload_type):#06x}) in {self.state}"
            )
        try:
            msg = decode_payload(fr.payload_type, fr.payload)
        except (ExiError, ValueError) as exc:
            raise EvccAbort(f"cannot decode the response to {pending.request}: {exc}") from exc
        name = message_name(msg)
        self._pending = None
        code_value = getattr(msg, "response_code", None)
        code = None if code_value is None else str(code_value)
        rec = self.messages[pending.record]
        self.messages[pending.record] = MessageRecord(
            rec.request, name, code, rec.sent_at, now, rec.connection, rec.state
        )
        if now - pending.sent_at > pending.perf_limit:
            self.timing_violations.append(
                TimingViolation(pending.request, now - pending.sent_at, pending.perf_limit)
            )
        if name != pending.expect:
            raise EvccAbort(
                f"expected {pending.expect}, got {name}" + (f" ({code})" if code else "")
            )
        if message_schema(msg) != pending.schema:
            raise EvccAbort(f"{name} arrived with the wrong V2GTP payload type")

        status = getattr(msg, "evse_status", None)
        notification = self._last_notification = None
        if status is not None and status.evse_notification is not None:
            notification = self._last_notification = str(status.evse_notification)
            self.evse_notifications.append(f"{name}:{notification}")
            if notification == "Terminate":
                self._terminate_seen = True

        if code is not None and code.upper().startswith("FAILED"):
            if self.scenario.expect_evse_stop and self._terminate_seen:
                self.stop_reason = "evse_terminate"
                self.battery.set_contactors(False)
                self._finish(now, note=f"the charger ended the session with {name} {code}")
                return
            raise EvccAbort(f"{name}: {code}")
        if code is not None and code.startswith("WARNING"):
            self.warnings.append(f"{name}: {code}")

        if name not in ("supportedAppProtocolRes", "SessionSetupRes") and (
            msg.header.session_id != self._session_id
        ):
            raise EvccAbort(
                f"{name} carries SessionID {msg.header.session_id.hex().upper()}, "
                f"session is {self._session_id.hex().upper()}"
            )
        handler = getattr(self, "_on_" + name)
        handler(msg, now)

    # -- session setup -------------------------------------------------------------------

    def _on_supportedAppProtocolRes(self, msg: Any, now: float) -> None:  # noqa: N802
        offers = {o.schema_id: o for o in self.scenario.offers()}
        if msg.schema_id is None or msg.schema_id not in offers:
            raise EvccAbort(f"supportedAppProtocolRes selected SchemaID {msg.schema_id}, "
                            f"offered {sorted(offers)}")
        chosen = offers[msg.schema_id]
        self.protocol = chosen.namespace
        wanted_dc = self.scenario.service.is_dc
        if chosen.namespace.endswith(":DC") != wanted_dc:
            raise EvccAbort(f"the SECC chose {chosen.namespace}, scenario needs "
                            f"{'DC' if wanted_dc else 'AC'}")
        self._send(self._req_session_setup(now), now, EvState.SESSION_SETUP)

    def _on_SessionSetupRes(self, msg: Any, now: float) -> None:  # noqa: N802
        self._setup_deadline = None
        code = str(msg.response_code)
        self.evse_id = msg.evseid
        sid = msg.header.session_id
        if self._resuming:
            if code != "OK_OldSessionJoined":
                raise EvccAbort(f"resuming session {self._session_id.hex().upper()}: expected "
                                f"OK_OldSessionJoined, got {code}")
            if sid != self._session_id:
                raise EvccAbort("resumed session came back with another SessionID")
            self._resumed = True
            self._resuming = False
            if self.scenario.resume_via_authorization:
                self._send(self._req_auth_setup(now), now, EvState.AUTHORIZATION_SETUP)
            else:
                self._send(self._req_cpd(now), now, EvState.CHARGE_PARAMETER_DISCOVERY)
            return
        if code == "OK":
            self.warnings.append("SessionSetupRes: OK instead of OK_NewSessionEstablished")
        elif code != "OK_NewSessionEstablished":
            raise EvccAbort(f"new session: expected OK_NewSessionEstablished, got {code}")
        if sid is None or len(sid) != 8:
            raise EvccAbort("SessionSetupRes without an 8-byte SessionID")
        if sid == bytes(8):
            self.warnings.append("the SECC assigned the all-zero SessionID")
        self._session_id = sid
        self._session_established = True
        self._send(self._req_auth_setup(now), now, EvState.AUTHORIZATION_SETUP)

    def _on_AuthorizationSetupRes(self, msg: Any, now: float) -> None:  # noqa: N802
        services = [str(s) for s in msg.authorization_services]
        if self.pnc is not None:
            self._pnc_setup(msg, services, now)
            return
        if "EIM" not in services:
            raise EvccAbort(f"the SECC offers no EIM authorization (offers {services})")
        self._begin_phase(now, EvState.AUTHORIZATION, self._req_auth)

    # -- Plug & Charge (simulators.ev.pnc) -------------------------------------------------

    def _pnc_setup(self, msg: Any, services: list[str], now: float) -> None:
        pnc = self.pnc
        assert pnc is not None
        mode = msg.pnc_as_res_authorization_mode
        self._installation_offered = bool(msg.certificate_installation_service)
        problem = None
        if "PnC" not in services or mode is None:
            problem = f"the SECC offers no PnC authorization (offers {services})"
        elif pnc.wants_installation(bool(msg.certificate_installation_service)):
            pnc.gen_challenge = bytes(mode.gen_challenge)
            self._begin_phase(now, EvState.CERTIFICATE_INSTALLATION, self._req_cert_install)
            return
        elif not pnc.has_contract:
            problem = ("PnC without a contract certificate and key (and no certificate "
                       "installation offered or configured)")
        if problem is None:
            pnc.gen_challenge = bytes(mode.gen_challenge)
        elif self.scenario.pnc_fallback_to_eim and "EIM" in services:
            self.warnings.append(f"{problem}: falling back to EIM")
            self.pnc = None
        else:
            raise EvccAbort(problem)
        self._begin_phase(now, EvState.AUTHORIZATION, self._req_auth)

    def _req_cert_install(self, now: float) -> Any:
        assert self.pnc is not None
        return self.pnc.certificate_installation_req(self._hdr(iso20, now))

    def _on_CertificateInstallationRes(self, msg: Any, now: float) -> None:  # noqa: N802
        pnc = self.pnc
        assert pnc is not None
        if str(msg.evse_processing) in _ONGOING:
            self._repeat(now, EvState.CERTIFICATE_INSTALLATION, self._req_cert_install,
                         self.timeouts.ongoing, "V2G_EVCC_Ongoing_Timeout")
            return
        code = str(msg.response_code)
        if code.startswith("OK"):
            try:
                pnc.accept_installation(msg, self._timestamp(now))
            except ValueError as exc:  # SignatureError, ChainError, KeyTransportError
                raise EvccAbort(f"CertificateInstallationRes rejected: {exc}") from exc
        elif not pnc.has_contract:
            raise EvccAbort(f"certificate installation failed ({code}) and no contract")
        if self._renewing:  # already authorized: the new contract is for the next sessions
            self._renewing = False
            self._after_authorization(now)
            return
        self._begin_phase(now, EvState.AUTHORIZATION, self._req_auth)

    def _on_AuthorizationRes(self, msg: Any, now: float) -> None:  # noqa: N802
        code = str(msg.response_code)
        if str(msg.evse_processing) in _ONGOING:
            self._repeat(now, EvState.AUTHORIZATION, self._req_auth,
                         self.timeouts.ongoing, "V2G_EVCC_Ongoing_Timeout")
            return
        if code.startswith("WARNING"):
            raise EvccAbort(f"authorization refused: {code}")
        pnc = self.pnc
        if (code == "OK_CertificateExpiresSoon" and pnc is not None
                and pnc.wants_renewal(self._installation_offered)):
            self._renewing = True
            self._begin_phase(now, EvState.CERTIFICATE_INSTALLATION, self._req_cert_install)
            return
        self._after_authorization(now)

    def _after_authorization(self, now: float) -> None:
        if self._resumed:
            self._send(self._req_cpd(now), now, EvState.CHARGE_PARAMETER_DISCOVERY)
        else:
            self._send(self._req_service_discovery(now), now, EvState.SERVICE_DISCOVERY)

    def _on_ServiceDiscoveryRes(self, msg: Any, now: float) -> None:  # noqa: N802
        offered = [s.service_id for s in msg.energy_transfer_service_list.service]
        if int(self.scenario.service) not in offered:
            raise EvccAbort(f"the SECC does not offer service {int(self.scenario.service)} "
                            f"({self.scenario.service.name}); it offers {offered}")
        self._send(self._req_service_detail(now), now, EvState.SERVICE_DETAIL)

    def _on_ServiceDetailRes(self, msg: Any, now: float) -> None:  # noqa: N802
        if msg.service_id != int(self.scenario.service):
            raise EvccAbort(f"ServiceDetailRes for service {msg.service_id}, asked "
                            f"{int(self.scenario.service)}")
        want = self.scenario.control_mode.parameter_value
        chosen = None
        for ps in msg.service_parameter_list.parameter_set:
            params = {p.name: p for p in ps.parameter}
            mode = params.get("ControlMode")
            if mode is None or parameter_int(mode) == want:
                chosen = ps
                break
        if chosen is None:
            raise EvccAbort(f"no parameter set with ControlMode={want} "
                            f"({self.scenario.control_mode})")
        self.parameter_set_id = chosen.parameter_set_id
        self.service_parameters = {p.name: parameter_value(p) for p in chosen.parameter}
        self._send(self._req_service_selection(now), now, EvState.SERVICE_SELECTION)

    def _on_ServiceSelectionRes(self, msg: Any, now: float) -> None:  # noqa: N802
        self._send(self._req_cpd(now), now, EvState.CHARGE_PARAMETER_DISCOVERY)

    # -- charge parameters and schedule --------------------------------------------------

    def _on_DC_ChargeParameterDiscoveryRes(self, msg: Any, now: float) -> None:  # noqa: N802
        bpt = msg.bpt_dc_cpd_res_energy_transfer_mode
        mode = bpt if bpt is not None else msg.dc_cpd_res_energy_transfer_mode
        if mode is None:
            raise EvccAbort("DC_ChargeParameterDiscoveryRes without an energy transfer mode")
        if self.scenario.service.is_bpt and bpt is None:
            raise EvccAbort("BPT service selected but the SECC sent no BPT_DC_CPDRes parameters")
        self.evse_limits.update(
            mode,
            max_charge_power="evse_maximum_charge_power",
            min_charge_power="evse_minimum_charge_power",
            max_charge_current="evse_maximum_charge_current",
            max_voltage="evse_maximum_voltage",
            min_voltage="evse_minimum_voltage",
        )
        if bpt is not None:
            self.evse_limits.update(
                bpt,
                max_discharge_power="evse_maximum_discharge_power",
                min_discharge_power="evse_minimum_discharge_power",
                max_discharge_current="evse_maximum_discharge_current",
            )
        self._begin_phase(now, EvState.SCHEDULE_EXCHANGE, self._req_schedule_exchange)

    def _on_AC_ChargeParameterDiscoveryRes(self, msg: Any, now: float) -> None:  # noqa: N802
        bpt = msg.bpt_ac_cpd_res_energy_transfer_mode
        mode = bpt if bpt is not None else msg.ac_cpd_res_energy_transfer_mode
        if mode is None:
            raise EvccAbort("AC_ChargeParameterDiscoveryRes without an energy transfer mode")
        if self.scenario.service.is_bpt and bpt is None:
            raise EvccAbort("BPT service selected but the SECC sent no BPT_AC_CPDRes parameters")
        self.evse_limits.update(
            mode,
            max_charge_power="evse_maximum_charge_power",
            min_charge_power="evse_minimum_charge_power",
        )
        if bpt is not None:
            self.evse_limits.update(
                bpt,
                max_discharge_power="evse_maximum_discharge_power",
                min_discharge_power="evse_minimum_discharge_power",
            )
        self._begin_phase(now, EvState.SCHEDULE_EXCHANGE, self._req_schedule_exchange)

    def _on_ScheduleExchangeRes(self, msg: Any, now: float) -> None:  # noqa: N802
        if str(msg.evse_processing) in _ONGOING:
            self._repeat(now, EvState.SCHEDULE_EXCHANGE, self._req_schedule_exchange,
                         self.timeouts.ongoing, "V2G_EVCC_Ongoing_Timeout")
            return
        if msg.go_to_pause:
            self.warnings.append("ScheduleExchangeRes asked GoToPause (ignored)")
        self._schedule_received_at = now
        self.price_schedules.append((_price_schedule(msg), msg.header.signature))
        if self.scenario.control_mode is ControlMode.SCHEDULED:
            mode = msg.scheduled_se_res_control_mode
            if mode is None or not mode.schedule_tuple:
                raise EvccAbort("Scheduled mode, but ScheduleExchangeRes has no ScheduleTuple")
            tup = mode.schedule_tuple[0]
            ps = tup.charging_schedule.power_schedule
            tol = maybe_value(ps.power_tolerance)
            dis = tup.discharging_schedule
            self.schedules_received += 1
            self.schedule = Schedule(
                tuple_id=tup.schedule_tuple_id,
                time_anchor=int(ps.time_anchor),
                charging=_entries(ps),
                discharging=_entries(dis.power_schedule) if dis is not None else (),
                power_tolerance=tol,
            )
        elif msg.dynamic_se_res_control_mode is None:
            raise EvccAbort("Dynamic mode, but ScheduleExchangeRes has no Dynamic_SEResControlMode")
        if self._renegotiating:  # contactors still closed: straight back to PowerDelivery
            self._renegotiating = False
            self.renegotiations += 1
            self._start_power_delivery(now)
        elif self.scenario.service.is_dc:
            self._begin_phase(now, EvState.CABLE_CHECK, self._req_cable_check)
        else:
            self._start_power_delivery(now)

    # -- DC preparation ------------------------------------------------------------------

    def _on_DC_CableCheckRes(self, msg: Any, now: float) -> None:  # noqa: N802
        if str(msg.evse_processing) in _ONGOING:
            self._repeat(now, EvState.CABLE_CHECK, self._req_cable_check,
                         self.timeouts.cable_check, "V2G_EVCC_CableCheck_Timeout")
            return
        self._precharge_done = False
        self._precharge_target = self.battery.open_circuit_voltage()
        self._begin_phase(now, EvState.PRE_CHARGE, self._req_pre_charge)

    def _on_DC_PreChargeRes(self, msg: Any, now: float) -> None:  # noqa: N802
        if self._precharge_done:
            self._start_power_delivery(now)
            return
        voltage = value_of(msg.evse_present_voltage)
        if abs(voltage - self._precharge_target) <= self.scenario.precharge_tolerance_v:
            self._precharge_done = True
            self._send(self._req_pre_charge(now), now, EvState.PRE_CHARGE)
            return
        self._repeat(now, EvState.PRE_CHARGE, self._req_pre_charge,
                     self.timeouts.pre_charge, "V2G_EVCC_PreCharge_Timeout")

    # -- power delivery and the charge loop ----------------------------------------------

    def _start_power_delivery(self, now: float) -> None:
        self.battery.set_contactors(True)
        self._send(self._req_power_delivery(now, "Start"), now, EvState.POWER_DELIVERY_START)

    def _on_PowerDeliveryRes(self, msg: Any, now: float) -> None:  # noqa: N802
        if self.state is EvState.SCHEDULE_RENEGOTIATION:
            if str(msg.response_code).startswith("WARNING"):  # refused: keep the old schedule
                self._loop_later(now)
                return
            self._renegotiating = True
            self._begin_phase(now, EvState.SCHEDULE_EXCHANGE, self._req_schedule_exchange)
            return
        if self.state is EvState.POWER_DELIVERY_START:
            if self._channel_switch:  # BPT channel re-selected inside the charge loop
                self._channel_switch = False
                self._send_loop(now)
                return
            self._last_sim_at = now
            self._evse_target_power = None
            if self._terminate_seen:
                self._begin_stop(now, "evse_terminate")
                return
            self._send_loop(now)
        else:
            self.battery.set_contactors(False)
            if self.scenario.service.is_dc:
                self._welding_done = False
                self._begin_phase(now, EvState.WELDING_DETECTION, self._req_welding)
            else:
                self._send(self._req_session_stop(now), now, EvState.SESSION_STOP)

    def _send_loop(self, now: float) -> None:
        self._last_loop_sent = now
        self._send(self._req_loop(now), now, EvState.CHARGE_LOOP)

    def _loop_later(self, now: float) -> None:
        last = self._last_loop_sent if self._last_loop_sent is not None else now
        delay = last + self.scenario.loop_interval - now

        def build(t: float) -> Any:
            wanted = self._wanted_channel()
            if wanted is not None and wanted != self._channel:
                self._channel_switch = True
                return self._req_power_delivery(t, "Start"), EvState.POWER_DELIVERY_START
            self._last_loop_sent = t
            return self._req_loop(t)

        self._later(delay, EvState.CHARGE_LOOP, build, now)

    def _advance_sim(self, now: float) -> float:
        if self.scenario.loop_sim_seconds is not None:
            dt = self.scenario.loop_sim_seconds
        else:
            last = self._last_sim_at if self._last_sim_at is not None else now
            dt = max(0.0, now - last) * self.scenario.speedup
        self._last_sim_at = now
        self.sim_time += dt
        return dt

    def _on_DC_ChargeLoopRes(self, msg: Any, now: float) -> None:  # noqa: N802
        scheduled = self.scenario.control_mode is ControlMode.SCHEDULED
        sched_mode = _first(msg.bpt_scheduled_dc_cl_res_control_mode,
                            msg.scheduled_dc_cl_res_control_mode)
        dyn_mode = _first(msg.bpt_dynamic_dc_cl_res_control_mode,
                          msg.dynamic_dc_cl_res_control_mode)
        mode = sched_mode if scheduled else dyn_mode
        if mode is None:
            raise EvccAbort(f"DC_ChargeLoopRes without a {self.scenario.control_mode} "
                            "control mode")
        bpt_res = _first(msg.bpt_scheduled_dc_cl_res_control_mode,
                         msg.bpt_dynamic_dc_cl_res_control_mode) is not None
        if bpt_res != self.scenario.service.is_bpt:
            self._warn_once("DC_ChargeLoopRes control mode BPT-ness differs from the request")
        self.evse_limits.update(
            mode,
            max_charge_power="evse_maximum_charge_power",
            min_charge_power="evse_minimum_charge_power",
            max_charge_current="evse_maximum_charge_current",
            max_voltage="evse_maximum_voltage",
            max_discharge_power="evse_maximum_discharge_power",
            min_discharge_power="evse_minimum_discharge_power",
            max_discharge_current="evse_maximum_discharge_current",
            min_voltage="evse_minimum_voltage",
        )
        if not scheduled and getattr(mode, "target_soc", None) is not None:
            self.service_parameters.setdefault("SECC_TargetSOC", mode.target_soc)
        current = value_of(msg.evse_present_current)
        voltage = value_of(msg.evse_present_voltage)
        dt = self._advance_sim(now)
        self.battery.apply_current(current, dt, voltage)
        if current < 0:
            self.discharge_seen = True
        if msg.meter_info is not None:
            self.meter_info = msg.meter_info
        self._after_loop(now)

    def _on_AC_ChargeLoopRes(self, msg: Any, now: float) -> None:  # noqa: N802
        scheduled = self.scenario.control_mode is ControlMode.SCHEDULED
        sched_mode = _first(msg.bpt_scheduled_ac_cl_res_control_mode,
                            msg.scheduled_ac_cl_res_control_mode)
        dyn_mode = _first(msg.bpt_dynamic_ac_cl_res_control_mode,
                          msg.dynamic_ac_cl_res_control_mode)
        mode = sched_mode if scheduled else dyn_mode
        if mode is None:
            raise EvccAbort(f"AC_ChargeLoopRes without a {self.scenario.control_mode} "
                            "control mode")
        dt = self._advance_sim(now)
        self.battery.apply_power(self._ac_power_sent, dt)
        if self._ac_power_sent < 0:
            self.discharge_seen = True
        target = maybe_value(getattr(mode, "evse_target_active_power", None))
        if target is None and not scheduled:
            raise EvccAbort("Dynamic AC_ChargeLoopRes without EVSETargetActivePower")
        self._evse_target_power = target
        if msg.meter_info is not None:
            self.meter_info = msg.meter_info
        self._after_loop(now)

    def _after_loop(self, now: float) -> None:
        self.loops += 1
        reason = self._loop_stop_reason()
        renegotiate = self.scenario.renegotiate_after_loops
        asked = self._last_notification == "ScheduleRenegotiation"  # by the SECC
        if reason is None and (asked or renegotiate is not None and self.loops == renegotiate):
            self._send(self._req_power_delivery(now, "ScheduleRenegotiation"), now,
                       EvState.SCHEDULE_RENEGOTIATION)
            return
        if reason is None:
            if self._wants_metering_confirmation():
                self._send(self._req_metering_confirmation(now), now, EvState.CHARGE_LOOP)
            else:
                self._loop_later(now)
            return
        if reason == "pause":
            self._paused_once = True
            self._begin_stop(now, "pause", session_end="Pause", resume=True)
        elif reason == "evse_pause":
            self._begin_stop(now, reason, session_end="Pause", resume=False)
        else:
            self._begin_stop(now, reason)

    # -- MeteringConfirmation (PnC) --------------------------------------------------------

    def _wants_metering_confirmation(self) -> bool:
        return (self._last_notification == "MeteringConfirmation" and self.pnc is not None
                and self.pnc.has_contract and self.meter_info is not None
                and self.scenario.pnc_metering_confirmation)

    def _req_metering_confirmation(self, now: float) -> Any:
        assert self.pnc is not None
        scheduled = self.scenario.control_mode is ControlMode.SCHEDULED
        tuple_id = self.schedule.tuple_id if scheduled and self.schedule is not None else None
        return self.pnc.metering_confirmation_req(self._hdr(iso20, now), self.meter_info,
                                                  tuple_id)

    def _on_MeteringConfirmationRes(self, msg: Any, now: float) -> None:  # noqa: N802
        self._loop_later(now)

    def _loop_stop_reason(self) -> str | None:
        cfg = self.scenario
        last = self.evse_notifications[-1].split(":")[-1] if self.evse_notifications else None
        if self._terminate_seen:
            return "evse_terminate"
        if last == "Pause":
            return "evse_pause"
        if self._stop_requested is not None:
            return self._stop_requested
        if (cfg.pause_after_loops is not None and not self._paused_once
                and self.loops >= cfg.pause_after_loops):
            return "pause"
        if cfg.stop_after_loops is not None and self.loops >= cfg.stop_after_loops:
            return "ev_stop"
        if self.battery.soc * 100.0 >= cfg.target_soc - 1e-9 and not self._discharging_now():
            return "target_soc"
        if cfg.max_loops is not None and self.loops >= cfg.max_loops:
            return "max_loops"
        if cfg.max_duration is not None and self.sim_time >= cfg.max_duration:
            return "max_duration"
        return None

    def _begin_stop(
        self, now: float, reason: str, *, session_end: str = "Terminate", resume: bool = False
    ) -> None:
        self.stop_reason = reason
        self._session_end = session_end
        self._resume_after_pause = resume
        self._send(self._req_power_delivery(now, "Stop"), now, EvState.POWER_DELIVERY_STOP)

    # -- shutdown ------------------------------------------------------------------------

    def _on_DC_WeldingDetectionRes(self, msg: Any, now: float) -> None:  # noqa: N802
        if self._welding_done:
            self._send(self._req_session_stop(now), now, EvState.SESSION_STOP)
            return
        voltage = value_of(msg.evse_present_voltage)
        if voltage <= self.scenario.welding_voltage_threshold:
            self._welding_done = True
            self._send(self._req_welding(now), now, EvState.WELDING_DETECTION)
            return
        limit = self.timeouts.welding
        if now + self.scenario.precharge_interval - self._phase_started > limit:
            self.warnings.append(f"charger output still at {voltage:.0f} V after welding "
                                 f"detection for {limit:g} s")
            self._send(self._req_session_stop(now), now, EvState.SESSION_STOP)
            return
        self._later(self.scenario.precharge_interval, EvState.WELDING_DETECTION,
                    self._req_welding, now)

    def _on_SessionStopRes(self, msg: Any, now: float) -> None:  # noqa: N802
        if self._session_end == "Pause" and self._resume_after_pause:
            self._pending = None
            self._enter(EvState.PAUSED)
            self._out.append(Reconnect(self.scenario.pause_duration))
            return
        self._finish(now)

    def _warn_once(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


__all__ = [
    "Effect",
    "EnergyService",
    "Evcc",
    "EvccAbort",
    "EvseLimits",
    "EvState",
    "Failed",
    "Finished",
    "Reconnect",
    "Schedule",
    "SendData",
    "TERMINAL_STATES",
]


def _price_schedule(msg: Any) -> Any:
    """The price schedule a ScheduleExchangeRes gives for charging (absolute or levels)."""
    mode = msg.dynamic_se_res_control_mode
    if msg.scheduled_se_res_control_mode is not None and \
            msg.scheduled_se_res_control_mode.schedule_tuple:
        mode = msg.scheduled_se_res_control_mode.schedule_tuple[0].charging_schedule
    if mode is None:
        return None
    return mode.absolute_price_schedule or mode.price_level_schedule

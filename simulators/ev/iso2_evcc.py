"""Sans-IO simulated EV for ISO 15118-2 (EIM, DC and AC), request after response.

    ev = Iso2Evcc(ISO2_SCENARIOS["iso2_dc"])
    send(ev.start(now))                        # supportedAppProtocolReq (V2GTP frame)
    for effect in ev.receive_data(chunk, now): # SendData / Reconnect / Done
        ...

Flow: supportedAppProtocol (-2 only, or -2 first among others), SessionSetup,
ServiceDiscovery, ServiceDetail (charge service), PaymentServiceSelection (ExternalPayment),
Authorization (repeated while Ongoing), ChargeParameterDiscovery (repeated while Ongoing),
DC: CableCheck (while Ongoing), PreCharge (until the charger's voltage is within 10 V),
PowerDelivery Start, CurrentDemand x loops, PowerDelivery Stop, WeldingDetection,
SessionStop; AC: PowerDelivery Start, ChargingStatus x loops, PowerDelivery Stop,
SessionStop. Options: renegotiate after some loops (PowerDelivery Renegotiate,
ChargeParameterDiscovery, PowerDelivery Start), pause (SessionStop Pause, then Reconnect and
SessionSetup with the old SessionID), send quirks of real cars (an empty SessionID in
SessionSetup, a trailing 0x00 after each EXI stream, RemainingTimeToFullSoC in minutes).

Plug & Charge (`pnc`, over TLS 1.2, with `Iso2Evcc.credentials`): PaymentServiceSelection
(Contract), optionally CertificateInstallation (`install_certificate`: the SA provisioning
chain and signature are checked, the contract key decrypted with the OEM provisioning key),
PaymentDetails (contract chain, eMAID), Authorization signed over the GenChallenge, and a
signed MeteringReceipt whenever a loop response says ReceiptRequired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import exi_codec
from evse.protocol.v2gtp import PayloadType, V2GTPReassembler, encode_frame
from exi_codec.schemas import iso2, sap
from simulators.ev.evcc import Reconnect, SendData

ISO2_NAMESPACE = "urn:iso:15118:2:2013:MsgDef"
_ISO20_DC = "urn:iso:std:iso:15118:-20:DC"
_DIN = "urn:din:70121:2012:MsgDef"


@dataclass(frozen=True, slots=True)
class Iso2Scenario:
    name: str
    energy: str = "dc"  # "dc" / "ac"
    loops: int = 5
    renegotiate_after: int | None = None  # loops before PowerDelivery(Renegotiate)
    pause_after: int | None = None  # loops before PowerDelivery(Stop) + SessionStop(Pause)
    quirks: bool = False  # empty SessionID, trailing 0x00, RemainingTimeToFullSoC in minutes
    also_offer: tuple[str, ...] = ()  # other namespaces offered at SAP, after -2
    max_voltage: float = 450.0
    max_current: float = 120.0
    battery_voltage: float = 380.0
    target_current: float = 100.0
    ac_max_current: float = 16.0
    pnc: bool = False  # Contract (needs TLS and Iso2Evcc.credentials)
    install_certificate: bool = False  # CertificateInstallation before PaymentDetails


ISO2_SCENARIOS: dict[str, Iso2Scenario] = {
    s.name: s
    for s in (
        Iso2Scenario("iso2_dc"),
        Iso2Scenario("iso2_ac", energy="ac"),
        Iso2Scenario("iso2_dc_renegotiation", renegotiate_after=2),
        Iso2Scenario("iso2_ac_renegotiation", energy="ac", renegotiate_after=2),
        Iso2Scenario("iso2_dc_pause", pause_after=2),
        Iso2Scenario("iso2_dc_quirks", quirks=True),
        Iso2Scenario("iso2_dc_all_protocols", also_offer=(_ISO20_DC, _DIN)),
        Iso2Scenario("iso2_dc_pnc", pnc=True),
        Iso2Scenario("iso2_dc_pnc_install", pnc=True, install_certificate=True),
        Iso2Scenario("iso2_ac_pnc", energy="ac", pnc=True),
        Iso2Scenario("iso2_ac_pnc_install", energy="ac", pnc=True, install_certificate=True),
    )
}


@dataclass
class Iso2EvCredentials:
    """What a -2 PnC car holds: its OEM provisioning certificate and key, the V2G roots it
    trusts, and (once installed) its contract chain and key. `now`: the EV's clock for
    certificate validity (a callable returning an aware datetime)."""

    emaid: str
    oem_provisioning_cert: bytes  # DER
    oem_provisioning_key: Any  # ec.EllipticCurvePrivateKey (P-256)
    v2g_roots: tuple[Any, ...]  # x509.Certificate
    now: Any
    contract_chain: Any = None  # iso2.CertificateChainType
    contract_key: Any = None  # ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class Done:
    success: bool
    reason: str
    log: tuple[tuple[str, str], ...]  # (request, response code)


Effect = SendData | Reconnect | Done


def _pv(x: float, unit: str, multiplier: int = 0) -> iso2.PhysicalValueType:
    return iso2.PhysicalValueType(multiplier=multiplier, unit=iso2.unitSymbolType(unit),
                                  value=round(x / 10 ** multiplier))


def _si(p: Any) -> float:
    return float(p.value) * 10.0 ** int(p.multiplier)


@dataclass
class Iso2Evcc:
    scenario: Iso2Scenario
    evcc_id: bytes = bytes.fromhex("0A1B2C3D4E5F")
    session_id: bytes = b""
    log: list[tuple[str, str]] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    loops: int = 0
    connections: int = 0
    present_voltage: float = 0.0
    renegotiated: bool = False
    resuming: bool = False
    # the battery the charger's output sees (e.g. the sim HAL's EvBattery: `terminal_voltage`,
    # `soc`); None: a fixed `scenario.battery_voltage`, SOC 50 %
    battery: Any = None
    # the EV's own contactors (the sim HAL connects the battery only while they are closed)
    on_contactors: Any = None
    credentials: Iso2EvCredentials | None = None  # Plug & Charge
    pmax_w: list[list[float]] = field(default_factory=list)  # PMaxSchedule per SAScheduleList
    # per SAScheduleList: (its first tuple's SalesTariff or None, the header Signature)
    sales_tariffs: list[tuple[Any, Any]] = field(default_factory=list)
    pmax_at_loop: list[int] = field(default_factory=list)  # len(loop_log) at each of them
    # each loop response: (EVSEMaximumPowerLimit or -1 for AC, EVSEPresent V*A or AC max A)
    loop_log: list[tuple[float, float]] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)  # EVSENotification != None seen
    payment_options: tuple[str, ...] = ()
    _signature: Any = None  # the last response's header Signature
    _authorization: Any = None  # the signed AuthorizationReq (repeated while Ongoing)
    _pending: str = ""
    _done: bool = False

    def __post_init__(self) -> None:
        self._reassembler = V2GTPReassembler()

    def start(self, now: float) -> bytes:
        """The supportedAppProtocolReq of a new TCP connection."""
        self.connections += 1
        self._reassembler = V2GTPReassembler()
        offers = [(ISO2_NAMESPACE, 2, 0)] + [(ns, 1 if "-20" in ns else 2, 0)
                                              for ns in self.scenario.also_offer]
        req = sap.supportedAppProtocolReq(app_protocol=tuple(
            sap.AppProtocolType(protocol_namespace=ns, version_number_major=major,
                                version_number_minor=minor, schema_id=i + 1, priority=i + 1)
            for i, (ns, major, minor) in enumerate(offers)))
        self._pending = "supportedAppProtocolReq"
        return encode_frame(PayloadType.SAP, exi_codec.encode(req))

    def receive_data(self, data: bytes, now: float) -> list[Effect]:
        out: list[Effect] = []
        for item in self._reassembler.frames(data):
            if self._done:
                break
            out += self._on_payload(getattr(item, "payload", b""))
        return out

    # -- responses -----------------------------------------------------------------------------

    def _on_payload(self, payload: bytes) -> list[Effect]:
        try:
            if self._pending == "supportedAppProtocolReq":
                res = exi_codec.decode(payload, "sap")
                self.log.append((self._pending, str(res.response_code)))
                if not str(res.response_code).startswith("OK") or res.schema_id != 1:
                    return self._end(False, f"SAP: {res.response_code}")
                return self._send(self._session_setup())
            msg = exi_codec.decode(payload, "iso2")
        except Exception as exc:
            return self._end(False, f"undecodable response: {exc!r}")
        expected = self._pending[:-3] + "Res"
        body = getattr(msg.body, _snake(expected), None)
        if body is None:
            return self._end(False, f"expected {expected}")
        code = str(body.response_code)
        self._signature = msg.header.signature
        self.log.append((self._pending, code))
        if code.startswith("FAILED"):
            return self._end(False, f"{expected}: {code}")
        effects: list[Effect] = getattr(self, "_on_" + expected)(body, bytes(msg.header.session_id))
        return effects

    def _on_SessionSetupRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        if self.resuming and str(res.response_code) != "OK_OldSessionJoined":
            return self._end(False, f"resume refused: {res.response_code}")
        self.session_id = sid
        return self._send(iso2.ServiceDiscoveryReqType())

    def _on_ServiceDiscoveryRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        modes = [str(m) for m in res.charge_service.supported_energy_transfer_mode
                 .energy_transfer_mode]
        if self._mode() not in modes:
            return self._end(False, f"{self._mode()} not offered ({modes})")
        self.payment_options = tuple(str(o) for o in res.payment_option_list.payment_option)
        return self._send(iso2.ServiceDetailReqType(service_id=res.charge_service.service_id))

    def _on_ServiceDetailRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        option = "ExternalPayment"
        if self.scenario.pnc:
            if "Contract" not in self.payment_options or self.credentials is None:
                return self._end(False, f"Contract not offered ({self.payment_options}) or "
                                 "no credentials")
            option = "Contract"
        return self._send(iso2.PaymentServiceSelectionReqType(
            selected_payment_option=iso2.paymentOptionType(option),
            selected_service_list=iso2.SelectedServiceListType(
                selected_service=(iso2.SelectedServiceType(service_id=1),))))

    def _on_PaymentServiceSelectionRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        if not self.scenario.pnc:
            return self._send(iso2.AuthorizationReqType())
        creds = self.credentials
        assert creds is not None
        if self.scenario.install_certificate or creds.contract_chain is None:
            return self._send(_pnc().installation_request(creds))
        return self._send(_pnc().payment_details(creds))

    def _on_CertificateInstallationRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        creds = self.credentials
        assert creds is not None
        try:
            _pnc().install(creds, res, self._signature)
        except ValueError as exc:  # Iso2PncError too
            return self._end(False, f"certificate installation: {exc}")
        return self._send(_pnc().payment_details(creds))

    def _on_PaymentDetailsRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        creds = self.credentials
        assert creds is not None
        body, signature = _pnc().authorization(creds, bytes(res.gen_challenge))
        self._authorization = (body, signature)
        return self._send(body, signature)

    def _on_AuthorizationRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        if res.evse_processing != "Finished":
            if self._authorization is not None:
                return self._send(*self._authorization)
            return self._send(iso2.AuthorizationReqType())
        return self._send(self._cpd())

    def _on_ChargeParameterDiscoveryRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        if res.evse_processing != "Finished":
            return self._send(self._cpd())
        if res.sa_schedule_list is None:
            return self._end(False, "no SAScheduleList")
        for t in res.sa_schedule_list.sa_schedule_tuple[:1]:
            self.pmax_w.append([_si(e.p_max) for e in t.p_max_schedule.p_max_schedule_entry])
            self.sales_tariffs.append((t.sales_tariff, self._signature))
            self.pmax_at_loop.append(len(self.loop_log))
        if self.renegotiated or self.scenario.energy == "ac":
            return self._send(self._power_delivery("Start"))
        return self._send(iso2.CableCheckReqType(dc_ev_status=self._status()))

    def _on_CableCheckRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        if res.evse_processing != "Finished":
            return self._send(iso2.CableCheckReqType(dc_ev_status=self._status()))
        return self._send(self._precharge())

    def _on_PreChargeRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        self.present_voltage = _si(res.evse_present_voltage)
        if abs(self.present_voltage - self._battery_voltage()) > 10.0:
            return self._send(self._precharge())
        return self._send(self._power_delivery("Start"))

    def _on_PowerDeliveryRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        progress = self._last_progress
        if progress == "Renegotiate":
            self.renegotiated = True
            return self._send(self._cpd())
        if progress == "Start":
            self._contactors(True)
            return self._send(self._loop_req())
        if progress == "Stop":
            self._contactors(False)
        if self.scenario.energy == "dc":
            return self._send(iso2.WeldingDetectionReqType(dc_ev_status=self._status()))
        return self._send(self._stop())

    def _contactors(self, closed: bool) -> None:
        if self.on_contactors is not None:
            self.on_contactors(closed)

    def _on_loop(self, notification: str = "None") -> list[Effect]:
        self.loops += 1
        s = self.scenario
        if notification != "None":
            self.notifications.append(notification)
        if notification == "ReNegotiation":  # the EVSE asks for a new schedule
            return self._send(self._power_delivery("Renegotiate"))
        if notification == "StopCharging":  # the EVSE ends the session
            return self._send(self._power_delivery("Stop"))
        if s.renegotiate_after is not None and self.loops == s.renegotiate_after \
                and not self.renegotiated:
            return self._send(self._power_delivery("Renegotiate"))
        if s.pause_after is not None and self.loops >= s.pause_after and not self.resuming:
            return self._send(self._power_delivery("Stop"))
        if self.loops >= s.loops + (s.pause_after or 0) * self.resuming:
            return self._send(self._power_delivery("Stop"))
        return self._send(self._loop_req())

    def _on_CurrentDemandRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        self.present_voltage = _si(res.evse_present_voltage)
        self.loop_log.append((_si(res.evse_maximum_power_limit) if
                              res.evse_maximum_power_limit is not None else -1.0,
                              _si(res.evse_present_current) * self.present_voltage))
        return self._receipt(res) or self._on_loop(str(res.dc_evse_status.evse_notification))

    def _on_ChargingStatusRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        self.loop_log.append((-1.0, _si(res.evse_max_current) if res.evse_max_current
                              is not None else -1.0))
        return self._receipt(res) or self._on_loop(str(res.ac_evse_status.evse_notification))

    def _receipt(self, res: Any) -> list[Effect]:
        """ReceiptRequired: sign the MeterInfo with the contract key before looping on."""
        if not res.receipt_required or self.credentials is None:
            return []
        body, signature = _pnc().metering_receipt(self.credentials, self.session_id,
                                                  res.sa_schedule_tuple_id, res.meter_info)
        return self._send(body, signature)

    def _on_MeteringReceiptRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        return self._on_loop()

    def _on_WeldingDetectionRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        return self._send(self._stop())

    def _on_SessionStopRes(self, res: Any, sid: bytes) -> list[Effect]:  # noqa: N802
        if self._pausing():
            self.resuming = True
            self._pending = ""
            return [Reconnect(delay=1.0)]
        return self._end(True, "session stopped")

    # -- requests ------------------------------------------------------------------------------

    _last_progress: str = ""

    def _mode(self) -> str:
        return "DC_extended" if self.scenario.energy == "dc" else "AC_three_phase_core"

    def _pausing(self) -> bool:
        return self.scenario.pause_after is not None and not self.resuming

    def _session_setup(self) -> Any:
        if not self.resuming:
            self.session_id = b"" if self.scenario.quirks else bytes(8)
        return iso2.SessionSetupReqType(evccid=self.evcc_id)

    def _battery_voltage(self) -> float:
        if self.battery is None:
            return self.scenario.battery_voltage
        return float(self.battery.terminal_voltage)

    def _status(self) -> iso2.DC_EVStatusType:
        soc = 50 if self.battery is None else round(100 * float(self.battery.soc))
        return iso2.DC_EVStatusType(ev_ready=True, ev_error_code=iso2.DC_EVErrorCodeType.NO_ERROR,
                                    evresssoc=max(0, min(100, soc)))

    def _cpd(self) -> Any:
        s = self.scenario
        if s.energy == "ac":
            return iso2.ChargeParameterDiscoveryReqType(
                max_entries_sa_schedule_tuple=12,
                requested_energy_transfer_mode=iso2.EnergyTransferModeType(self._mode()),
                ac_ev_charge_parameter=iso2.AC_EVChargeParameterType(
                    departure_time=7200, e_amount=_pv(20000, "Wh", 1),
                    ev_max_voltage=_pv(400, "V"), ev_max_current=_pv(s.ac_max_current, "A"),
                    ev_min_current=_pv(6, "A")))
        return iso2.ChargeParameterDiscoveryReqType(
            max_entries_sa_schedule_tuple=12,
            requested_energy_transfer_mode=iso2.EnergyTransferModeType(self._mode()),
            dc_ev_charge_parameter=iso2.DC_EVChargeParameterType(
                departure_time=7200, dc_ev_status=self._status(),
                ev_maximum_current_limit=_pv(s.max_current, "A"),
                ev_maximum_voltage_limit=_pv(s.max_voltage, "V"),
                full_soc=100, bulk_soc=80))

    def _precharge(self) -> Any:
        return iso2.PreChargeReqType(dc_ev_status=self._status(),
                                     ev_target_voltage=_pv(self._battery_voltage(), "V"),
                                     ev_target_current=_pv(2, "A"))

    def _power_delivery(self, progress: str) -> Any:
        self._last_progress = progress
        dc = None
        if self.scenario.energy == "dc":
            dc = iso2.DC_EVPowerDeliveryParameterType(
                dc_ev_status=self._status(), charging_complete=progress == "Stop")
        return iso2.PowerDeliveryReqType(
            charge_progress=iso2.chargeProgressType(progress), sa_schedule_tuple_id=1,
            dc_ev_power_delivery_parameter=dc)

    def _loop_req(self) -> Any:
        s = self.scenario
        if s.energy == "ac":
            return iso2.ChargingStatusReqType()
        remaining = _pv(30, "m") if s.quirks else _pv(1800, "s", 1)
        return iso2.CurrentDemandReqType(
            dc_ev_status=self._status(), ev_target_current=_pv(s.target_current, "A"),
            ev_maximum_voltage_limit=_pv(s.max_voltage, "V"),
            ev_maximum_current_limit=_pv(s.max_current, "A"),
            charging_complete=False, remaining_time_to_full_so_c=remaining,
            ev_target_voltage=_pv(s.max_voltage - 10, "V"))

    def _stop(self) -> Any:
        option = "Pause" if self._pausing() else "Terminate"
        return iso2.SessionStopReqType(charging_session=iso2.chargingSessionType(option))

    def _send(self, body: Any, signature: Any = None) -> list[Effect]:
        name = type(body).__name__.removesuffix("Type")
        self._pending = name
        self.states.append(name)
        header = iso2.MessageHeaderType(session_id=self.session_id, signature=signature)
        msg = iso2.V2G_Message(header=header, body=iso2.BodyType(**{_snake(name): body}))
        exi = exi_codec.encode(msg)
        if self.scenario.quirks:
            exi += b"\x00"  # some cars pad the EXI stream
        return [SendData(encode_frame(PayloadType.SAP, exi), message=name)]

    def _end(self, success: bool, reason: str) -> list[Effect]:
        self._done = True
        return [Done(success, reason, tuple(self.log))]


def _pnc() -> Any:
    from simulators.ev import iso2_pnc  # the crypto only when a PnC scenario runs

    return iso2_pnc


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")

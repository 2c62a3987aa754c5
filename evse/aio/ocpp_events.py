"""Session events (evse.events) -> OCPP: the station's public event stream drives the OCPP
client, never the SECC's private state.

    bridge = OcppEventBridge(client, station.events(), evse_ids={"1": 1, "2": 2})
    task = bridge.start()

Mapping (docs/ocpp.md):
- Plugged / Unplugged -> StatusNotification Occupied / Available (also at a session's start
  and end, for servers that do not publish plug events);
- SessionStarted -> TransactionEvent Started (EVDetected), transactionId = the session id; a
  resumed session continues its transaction (Updated, EVDetected);
- AuthorizationDecided(granted) -> Updated (Authorized) with the idToken (eMAID for PnC, the
  EVCCID as MacAddress for EIM);
- Measurement -> the latest sample, sent as Updated (MeterValuePeriodic) at the sampled
  interval; the registers are the session's own energy in/out (Wh, from 0 at Started) and
  power/current keep their sign (negative: discharge -> Export measurands);
- SessionPaused -> Updated (ChargingStateChanged, SuspendedEV); Fault / SafeState -> Updated
  (AbnormalCondition);
- SessionEnded -> Ended: StoppedByEV (ChargingStateChanged), or Other (AbnormalCondition) when
  the session failed; a paused session keeps its transaction open.

The bridge consumes the stream in its own task, so the charge loop never waits for OCPP; a
lost lifecycle event (ConsumerOverflow) is logged and the bridge subscribes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from evse import events as se
from evse.aio.ocpp_auth import OcppAuthorizer
from evse.aio.ocpp_certificates import OcppCertificateSource, OcppOcspChecker
from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_energy import OcppSchedulePolicy, OcppSetpoints
from evse.aio.ocpp_security import StationSecurity
from evse.aio.tasks import cancel_task
from evse.config import OcppConfig
from evse.ocpp.cert_store import CertStore
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation
from evse.ocpp.transactions import MeterSample
from evse.protocol.events import PowerBoundUpdated

__all__ = ["OcppEventBridge", "OcppRuntime"]

log = logging.getLogger(__name__)


class OcppEventBridge:
    def __init__(self, client: OcppClient, subscribe: Callable[[], se.Subscription],
                 evse_ids: Mapping[str, int]) -> None:
        self.client = client
        self._subscribe = subscribe
        self.evse_ids = dict(evse_ids)
        self._tx: dict[str, str] = {}  # connector -> open transaction id
        self._requested: dict[str, se.AuthorizationRequested] = {}
        self._last: dict[str, MeterSample] = {}
        self._task: asyncio.Task[None] | None = None
        # transactions the CSMS asked to stop: their Ended's (trigger, stoppedReason)
        self._remote_stops: dict[str, tuple[str, str]] = {}

    def connector_of(self, tx_id: str) -> str | None:
        return next((cid for cid, tx in self._tx.items() if tx == tx_id), None)

    def stop_requested(self, tx_id: str, trigger: str = "RemoteStop",
                       reason: str = "Remote") -> None:
        """The CSMS asked to stop `tx_id` (RequestStopTransaction, Reset): its Ended says so."""
        self._remote_stops[tx_id] = (trigger, reason)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="ocpp-events")
        return self._task

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    async def run(self) -> None:
        while True:
            stream = self._subscribe()
            try:
                async for event in stream:
                    try:
                        self.handle(event)
                    except Exception:  # one odd event must not end OCPP reporting
                        log.exception("OCPP: cannot map %r", event)
            finally:
                stream.close()

    def handle(self, event: se.SessionEvent) -> None:
        c = self.client
        cid = event.connector_id
        evse_id = self.evse_ids.get(cid)
        if evse_id is None and not isinstance(event, se.ConsumerOverflow):
            return
        tx = self._tx.get(cid)
        match event:
            case se.Plugged():
                c.connector_status(evse_id, 1, "Occupied")  # type: ignore[arg-type]
            case se.Unplugged():
                c.connector_status(evse_id, 1, "Available")  # type: ignore[arg-type]
            case se.SessionStarted():
                self._started(event, evse_id, tx)  # type: ignore[arg-type]
            case se.AuthorizationRequested():
                self._requested[cid] = event
            case se.AuthorizationDecided(granted=True) if tx is not None:
                self._authorized(cid, evse_id, tx)  # type: ignore[arg-type]
            case se.Measurement() if tx is not None:
                sample = MeterSample(event.energy_in_wh or 0.0, event.energy_out_wh or 0.0,
                                     power_w=event.power_w, current_a=event.current_a,
                                     voltage_v=event.voltage_v)
                self._last[cid] = sample
                c.meter_sample(tx, sample)
            case se.SessionPaused() if tx is not None:
                c.transaction_updated(tx, "ChargingStateChanged", charging_state="SuspendedEV")
            case se.Fault() | se.SafeState() if tx is not None:
                self._fault(cid, tx, event.reason)
            case se.SessionEnded(paused=False) if tx is not None:
                self._ended(event, evse_id, tx)  # type: ignore[arg-type]
            case se.ConsumerOverflow(lost=lost):
                log.error("OCPP: %d session events lost (consumer overflow); resubscribing",
                          lost)
            case _:
                pass

    def _started(self, event: se.SessionStarted, evse_id: int, tx: str | None) -> None:
        c, cid, sid = self.client, event.connector_id, event.session_id
        if event.resumed and tx == sid:
            c.transaction_updated(sid, "EVDetected", charging_state="EVConnected")
            return
        if tx is not None:  # a session we never saw end (overflow): close it
            c.transaction_ended(tx, "AbnormalCondition", "Other",
                                self._last.get(cid, MeterSample(0.0)))
        c.connector_status(evse_id, 1, "Occupied")
        self._tx[cid] = sid
        self._last[cid] = MeterSample(0.0, 0.0)
        c.transaction_started(sid, evse_id, 1, "EVDetected", self._last[cid])

    def _fault(self, cid: str, tx: str, reason: str) -> None:
        self.client.transaction_updated(tx, "AbnormalCondition", with_meter=True)
        if "emergency" in reason.lower():  # the e-stop is a security event
            self.client.security_event("EmergencyStop", f"connector {cid}: {reason}")

    def _authorized(self, cid: str, evse_id: int, tx: str) -> None:
        c = self.client
        req = self._requested.pop(cid, None)
        remote = c.remote_granted.pop(evse_id, None)
        if remote is not None:
            c.transaction_updated(tx, "RemoteStart", id_token=remote[0],
                                  remote_start_id=remote[1])
            return
        token = None
        if req is not None:
            token = ({"idToken": req.emaid, "type": "eMAID"}
                     if req.method == "PnC" and req.emaid
                     else {"idToken": req.evcc_id, "type": "MacAddress"})
        c.transaction_updated(tx, "Authorized", id_token=token)

    def _ended(self, event: se.SessionEnded, evse_id: int, tx: str) -> None:
        c, cid = self.client, event.connector_id
        summary = event.summary
        last = self._last.pop(cid, MeterSample(0.0))
        if summary is not None:  # the session's own totals are the final word
            last = MeterSample(float(getattr(summary, "energy_in_wh", 0.0)),
                               float(getattr(summary, "energy_out_wh", 0.0)), power_w=0.0)
        del self._tx[cid]
        if tx in self._remote_stops:
            trigger, reason = self._remote_stops.pop(tx)
            c.transaction_ended(tx, trigger, reason, last)
        elif event.failed:
            c.transaction_ended(tx, "AbnormalCondition", "Other", last)
        else:
            c.transaction_ended(tx, "ChargingStateChanged", "StoppedByEV", last)
        c.connector_status(evse_id, 1, "Available")


class OcppRuntime:
    """`evse secc` with an [ocpp] section: the client, its queue and the event bridge for a
    station's connectors (OCPP EVSE ids 1..N in the station's connector order)."""

    def __init__(self, config: OcppConfig, subscribe: Callable[[], se.Subscription],
                 connector_ids: list[str], *, vendor: str = "EvseStack",
                 model: str = "evse-stack", firmware_version: str | None = None,
                 message_log: Any = None) -> None:
        config.queue_file.parent.mkdir(parents=True, exist_ok=True)
        self.queue = DurableQueue(config.queue_file)
        station = OcppStation(vendor=vendor, model=model, firmware_version=firmware_version)
        evse_ids = {cid: i + 1 for i, cid in enumerate(connector_ids)}
        for evse_id in evse_ids.values():
            station.add_connector(evse_id, 1)
        self.client = OcppClient(config, station, queue=self.queue, message_log=message_log)
        self.client.cert_store = CertStore(config.certificates_dir)
        self.bridge = OcppEventBridge(self.client, subscribe, evse_ids)
        # the authorization hook (evse.hooks.Authorizer) when [ocpp] authorize = true
        self.authorizer = (OcppAuthorizer(self.client, pnc_offline=config.pnc_offline,
                                          evse_ids=evse_ids)
                           if config.authorize else None)
        # -20 CertificateInstallation and -2 CertificateInstallation/Update through
        # Get15118EVCertificate (evse.hooks.CertificateSource, Iso2CertificateSource) when
        # [ocpp] certificate_installation = true
        self.certificates = (OcppCertificateSource(self.client)
                             if config.certificate_installation else None)
        self._ocsp_always = config.ocsp
        # the CSMS's charging profiles bound the schedules (evse.hooks.SchedulePolicy)
        self.schedule_policy = OcppSchedulePolicy(self.client, evse_ids)
        self._evse_ids = evse_ids
        self.setpoints: OcppSetpoints | None = None
        # certificate renewal, security events, CSMS roots for the SECC (`evse secc` sets it)
        self.security: StationSecurity | None = None

    def use_ocsp(self, mo_roots: Sequence[Any]) -> None:
        """PnC contracts (chaining to these MO roots) get their OCSP status through
        GetCertificateStatus when Authorize gives none, or always with [ocpp] ocsp = true."""
        if self.authorizer is not None:
            self.authorizer.ocsp = OcppOcspChecker(self.client, mo_roots)
            self.authorizer.ocsp_always = self._ocsp_always

    def attach(self, set_bound: Callable[[str, PowerBoundUpdated], Any],
               stop_session: Callable[[str, str], bool] | None = None,
               set_in_service: Callable[[str, bool], None] | None = None) -> None:
        """The composite limit (and CentralSetpoint) bounds the sessions
        (SeccServer.set_power_bound), RequestStopTransaction stops them (stop_session) and
        ChangeAvailability takes connectors out of service (SeccServer.set_in_service)."""
        if set_in_service is not None:
            connectors = {e: cid for cid, e in self._evse_ids.items()}
            self.client.ops.on_availability = (
                lambda evse_id, operative: set_in_service(connectors[evse_id], operative))
            self.client.ops.apply()  # what was persisted before a restart
        self.setpoints = OcppSetpoints(self.client, self._evse_ids, set_bound)
        if stop_session is not None:
            self.client.request_stop = remote_stop(self.bridge, stop_session)

    async def start(self) -> None:
        self.client.recover()  # transactions a crash cut off: Ended (PowerLoss), queued
        self.bridge.start()
        self.client.start()
        if self.setpoints is not None:
            self.setpoints.start()
        if self.security is not None:
            self.security.start()

    async def stop(self) -> None:
        if self.security is not None:
            await self.security.stop()
        if self.setpoints is not None:
            await self.setpoints.stop()
        await self.bridge.stop()
        await self.client.stop()
        self.client.ops.close()
        self.queue.close()


def remote_stop(bridge: OcppEventBridge, stop_session: Callable[[str, str], bool]
                ) -> Callable[[str, str, str], bool]:
    """RequestStopTransaction / Reset -> stop the session running that transaction."""
    def stop(tx_id: str, trigger: str, reason: str) -> bool:
        cid = bridge.connector_of(tx_id)
        if cid is None:
            return False
        bridge.stop_requested(tx_id, trigger, reason)
        return stop_session(cid, f"{trigger} from the CSMS")

    return stop

"""Back to back in memory: the simulated -2 EV against `SeccConnection`, on a fake clock.

A minimal charger plays around the SECC: authorization granted on request, the cable check
passes, precharge reaches its target, the measured current is the commanded one. A Reconnect
opens a new SeccConnection sharing the SessionStore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evse.protocol import events as sev
from evse.protocol.config import SeccConfig, ServiceId
from evse.protocol.limits import EvseLimits
from evse.protocol.secc import SeccConnection
from evse.protocol.session import SessionStore
from simulators.ev.evcc import Reconnect, SendData
from simulators.ev.iso2_evcc import Done, Iso2Evcc, Iso2Scenario

EPOCH_OFFSET = 1_750_000_000.0  # the SECC's Unix time = fake clock + this
LIMITS = EvseLimits(max_charge_power=50_000.0, max_charge_current=125.0, max_voltage=500.0,
                    min_voltage=150.0)


def config(**kw: Any) -> SeccConfig:
    base: dict[str, Any] = dict(
        services=(ServiceId.DC, ServiceId.AC), limits=LIMITS, evse_id="DE*EVS*E0000002",
        protocols=("iso20", "iso2"), allow_plain_tcp_iso20=True,
    )
    base.update(kw)
    return SeccConfig(**base)


@dataclass
class Run:
    done: Done
    ev: Iso2Evcc
    secc_effects: list[Any] = field(default_factory=list)
    connections: list[SeccConnection] = field(default_factory=list)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.secc_effects if isinstance(e, kind)]


def back_to_back(scenario: Iso2Scenario, cfg: SeccConfig | None = None, *,
                 store: SessionStore | None = None, grant: bool = True,
                 step: float = 0.01, events: dict[int, sev.Event] | None = None,
                 t0: float = 100.0, tls: bool = False, ev: Iso2Evcc | None = None) -> Run:
    """`events[n]`: a charger event handed to the SECC before the EV's n-th request.
    `tls`: the connections are TLS 1.2 ones (Plug & Charge); `ev`: a prepared EV."""
    cfg = cfg or config()
    store = store if store is not None else SessionStore()
    ev = ev or Iso2Evcc(scenario)
    version = "TLSv1.2" if tls else None
    now = t0
    run = Run(done=Done(False, "not finished", ()), ev=ev)
    inbox: list[bytes] = [ev.start(now)]
    conn = SeccConnection(cfg, tls=tls, now=now, session_store=store,
                          epoch_offset=EPOCH_OFFSET, tls_version=version)
    run.connections.append(conn)
    pending = dict(events or {})
    for requests in range(1, 10_000):
        if not inbox:
            raise AssertionError(f"stalled in {conn.state}: {run.secc_effects[-5:]}")
        now += step
        if requests in pending:
            run.secc_effects += conn.handle_event(pending.pop(requests), now)
        effects = conn.receive_data(inbox.pop(0), now)
        effects += _charger(conn, effects, now, grant)
        run.secc_effects += effects
        replies = [e.data for e in effects if isinstance(e, sev.SendData)]
        for data in replies:
            now += step
            for out in ev.receive_data(data, now):
                if isinstance(out, SendData):
                    inbox.append(out.data)
                elif isinstance(out, Done):
                    run.done = out
                    return run
                elif isinstance(out, Reconnect):
                    now += out.delay
                    conn = SeccConnection(cfg, tls=tls, now=now, session_store=store,
                                          epoch_offset=EPOCH_OFFSET, tls_version=version)
                    run.connections.append(conn)
                    inbox.append(ev.start(now))
        if conn.closed and not inbox:
            run.done = Done(False, f"SECC closed in {conn.state}", tuple(ev.log))
            return run
    raise AssertionError("session did not end")


def _charger(conn: SeccConnection, effects: list[Any], now: float, grant: bool) -> list[Any]:
    """The charger's answers to the SECC's commands (events back into the SECC)."""
    out: list[Any] = []
    for e in effects:
        if isinstance(e, sev.RequestAuthorization):
            event: Any = sev.AuthorizationGranted() if grant else sev.AuthorizationDenied()
            out += conn.handle_event(event, now)
        elif isinstance(e, sev.StartCableCheck):
            out += conn.handle_event(sev.CableCheckFinished(isolation_ok=True), now)
        elif isinstance(e, sev.StartPreCharge):
            out += conn.handle_event(sev.MeasurementsUpdated(e.target_voltage, 0.0), now)
        elif isinstance(e, sev.SetPowerTarget):
            volts = e.voltage if conn.charger.present_voltage < 1 else \
                conn.charger.present_voltage
            out += conn.handle_event(sev.MeasurementsUpdated(volts, e.current), now)
        elif isinstance(e, sev.RequestIso2Certificate):  # answered at once, by the local SA
            out += conn.handle_event(sev.Iso2CertificateAnswered(provision(conn.config, e)),
                                     now)
    return out


def provision(cfg: SeccConfig, request: sev.RequestIso2Certificate) -> Any:
    """What the configured -2 provisioning service answers a held Certificate* request."""
    pnc = cfg.iso2_pnc
    assert pnc is not None
    body = request.message.body
    if request.action == "Install":
        return pnc.install(body.certificate_installation_req, timestamp=request.timestamp)
    return pnc.update(body.certificate_update_req, timestamp=request.timestamp)

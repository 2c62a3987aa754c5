"""The running charger as the MQTT API sees it: `SeccStationPort` over `SeccServer`.

    port = SeccStationPort(server, station_id="DE*ABC*E0000001", policy=policy,
                           prices=lambda now: tariffs.curve(...), mqtt_authorization=True,
                           reports_dir=Path("/var/lib/evse/reports"))
    bridge = MqttBridge(port, cfg.mqtt, station_id); port.bridge = bridge
    await server.start(); port.start(); bridge.start()
    ...
    await bridge.stop(); await port.close(); await server.close()

It implements `evse._mqtt_api.StationPort` (every method returns at once and never waits for
the EV or the hardware) and installs itself on the server (before `start()`):

- `connection_config`: every new connection gets the connector's SeccConfig: the limits the
  aggregator set (`limits` survive sessions and broker outages), the connector's
  `PlanningScheduleProvider` (its price curve: `[tariffs]` or the last `prices` command)
  behind a `GuardedScheduleProvider` (a failing plan gives the EV the default schedule and
  a `warning` event, never a FAILED session), and `auto_authorize=False` when EIM
  authorization comes over MQTT;
- `set_prices`: plans with the new curve on a copy first (the running Dynamic session, else
  a reference session from now); only a curve that plans is stored, else CommandRejected and
  nothing changes;
- `authorize`: with `mqtt_authorization` an EIM RequestAuthorization becomes an
  `authorization_requested` event and a pending future; the SECC answers
  EVSEProcessing=Ongoing_WaitingForCustomerInteraction until the `authorize` command
  resolves it (or the -20 Ongoing limit ends the session). Otherwise the hook that was
  installed before (Plug & Charge backends) or a plain grant answers;
- the session event stream (`evse.events`, `Station.events()`): `SessionStarted` becomes
  the `session_started` event, `SessionEnded` the `session_stopped` event and the session
  report (JSON + SVG with the money summary: evse.energy.accounting), written in a worker
  thread. A task started by `start()` consumes the stream; `drain_events()` handles what is
  queued at once (the authorization hook and `flush_reports` call it, so the MQTT events
  keep their order: session_started before authorization_requested).

A control task (`start()`, every `control_interval`) reports faults (`fault`), samples the
EV's SOC for the reports, and steers Dynamic-mode sessions: a grid outage (`set_outage`, the
MQTT `outage` command) hands them to the V2H runner (the EV supplies the house down to the
reserve SOC, then 0 W), else an MQTT setpoint wins, else a plan re-made after a mid-session
`prices` command, else the ScheduleExchange plan the SECC follows by itself. Without a
broker nothing waits: limits stay as they were, an MQTT setpoint expires after
`setpoint_fallback_s` offline and the local energy policy takes over.

By concern: the MQTT port is this module; setpoint arbitration (limits and which setpoint
wins) is `evse.aio.setpoint_arbiter`, V2H `evse.aio.v2h_runner`, the session reports
`evse.aio.session_reports`.

Sign convention (DESIGN 5): power and current are negative while the EV discharges.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evse import events as se
from evse._mqtt_api import (
    CommandRejected,
    ConnectorLimits,
    ConnectorState,
    EvNeeds,
    LimitsUpdate,
)
from evse._report import ReportPaths, SessionRecord
from evse.aio.connector_link import notify_current_limit
from evse.aio.secc_server import LOOP_STATES, SeccServer, SessionSummary
from evse.aio.session_reports import ReportWriter, session_record
from evse.aio.setpoint_arbiter import Caps, capped_limits
from evse.aio.tasks import cancel_task
from evse.aio.v2h_runner import V2hRunner
from evse.energy.guard import GuardedScheduleProvider, check_schedules
from evse.energy.optimizer import Plan, setpoint_at
from evse.energy.prices import PriceCurve
from evse.energy.provider import EnergyPolicy, PlanningScheduleProvider, estimate_soc
from evse.protocol import events as ev
from evse.protocol.config import BPT_SERVICES, ControlMode, SeccConfig
from evse.protocol.din.states import State as DinState
from evse.protocol.iso20.states import State
from evse.protocol.limits import EvseLimits, bounded

__all__ = ["SeccStationPort"]

log = logging.getLogger(__name__)

SERVICE_NAMES = {1: "AC", 2: "DC", 5: "AC_BPT", 6: "DC_BPT"}
MODE_NAMES = {1: "Scheduled", 2: "Dynamic"}
_STOPPING: frozenset[str] = frozenset({
    State.DC_POWER_OFF, State.DC_WELDING_DETECTION, State.AC_POWER_OFF, State.ENDED,
    DinState.POWER_OFF, DinState.WELDING_DETECTION,
})
FLOW_W = 50.0  # |power| below this in the charge loop: "suspended", not charging/discharging
MAX_SOC_SAMPLES = 100_000
EVENT_QUEUE_MAX = 100_000  # lifecycle events queued for the port (a few per session)


def _kw(w: float) -> str:
    return f"{w / 1000.0 + 0.0:g}"


@dataclass
class _Connector:
    """What the port keeps per connector, across and within sessions."""

    id: str
    provider: PlanningScheduleProvider
    guarded: GuardedScheduleProvider  # `provider` as the SECC calls it in ScheduleExchange
    caps: Caps = field(default_factory=Caps)
    prices_from_mqtt: bool = False
    # per connection / session
    conn: Any = None  # the SeccConnection (server.connection) a pending authorization is for
    announced: se.SessionStarted | None = None  # the session announced over MQTT
    sent_limits: EvseLimits | None = None
    override_w: float | None = None  # MQTT setpoint (Dynamic mode)
    applied_w: float | None = None  # last SetpointUpdated we sent (None: the schedule)
    replan: Plan | None = None  # a plan re-made mid-session (new prices)
    plan_before: Plan | None = None  # provider.last_plan when the connection began
    pending_auth: asyncio.Future[bool] | None = None
    auth_method: str | None = None
    id_token: str | None = None
    soc_log: list[tuple[float, float]] = field(default_factory=list)
    price_history: list[tuple[float, PriceCurve]] = field(default_factory=list)
    paused: bool = False  # the last session ended paused (until the next connection)
    fault_seen: str | None = None
    last_soc_sample: float = -math.inf


class SeccStationPort:
    """StationPort over a SeccServer (see the module docstring)."""

    def __init__(
        self,
        server: SeccServer,
        *,
        station_id: str,
        policy: EnergyPolicy | None = None,
        prices: PriceCurve | Callable[[float], PriceCurve] | None = None,
        plan_schedules: bool = True,
        mqtt_authorization: bool = False,
        home_load_w: float = 0.0,
        reports_dir: Path | str | None = None,
        report_svg: bool = True,
        on_report: Callable[[Any], None] | None = None,
        control_interval: float = 0.1,
        setpoint_fallback_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.station_id = station_id
        self.policy = policy or EnergyPolicy()
        self._prices_source = prices if prices is not None else PriceCurve.flat(0.30, 0.0)
        self.plan_schedules = plan_schedules
        self.mqtt_authorization = mqtt_authorization
        self.reports_dir = Path(reports_dir) if reports_dir is not None else None
        # session reports (JSON + SVG), written in a worker thread
        self.reports = ReportWriter(self.reports_dir, svg=report_svg, on_report=on_report)
        self.control_interval = control_interval
        self.setpoint_fallback_s = setpoint_fallback_s
        self.clock = clock
        self.bridge: Any = None  # an MqttBridge (post_event / notify_state / connected)
        self.v2h = V2hRunner(reserve_soc=self.policy.reserve_soc,
                             discharge_efficiency=self.policy.discharge_efficiency)
        self.v2h.home_load_w = home_load_w
        self.events: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=256)
        self._rated = server.config.limits
        self._outages: list[list[float]] = []  # [start, end] of grid outages (self.clock())
        self._connectors: dict[str, _Connector] = {}
        for c in server.station.connectors:
            planner = PlanningScheduleProvider(self._curve(clock()), self.policy)
            self._connectors[c.id] = _Connector(c.id, planner, GuardedScheduleProvider(
                planner, on_error=self._policy_failed(c.id)))
        self._task: asyncio.Task[None] | None = None
        self._offline_since: float | None = None
        self._last_hal: float | None = None
        # install on the server (before it accepts connections)
        self._previous_authorize = server.authorize
        server.connection_config = self.config_for
        server.authorize = self._authorize_hook
        # sessions starting and ending: from the session event stream (evse.events), never by
        # looking at connections; measurements are not needed here (one slot, drops ignored)
        self._events = server.station.events(measurements_max=1,
                                             lifecycle_max=EVENT_QUEUE_MAX)
        self._consumer: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        if self._consumer is None or self._consumer.done():
            self._consumer = loop.create_task(self._consume(), name="station-port-events")
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="energy")
        return self._task

    async def close(self) -> None:
        """End the control task and wait for the reports being written."""
        task, self._task = self._task, None
        await cancel_task(task)
        await self.flush_reports()
        consumer, self._consumer = self._consumer, None
        await cancel_task(consumer)

    async def flush_reports(self, timeout: float = 10.0) -> list[Any]:
        """Wait for the reports being written; returns every ReportPaths written so far."""
        self.drain_events()  # sessions that ended but whose event is still queued
        return await self.reports.flush(timeout)

    # -- the session event stream --------------------------------------------------------------

    async def _consume(self) -> None:
        async for event in self._events:
            self._on_event(event)

    def drain_events(self) -> None:
        """Handle every session event queued so far, now (the consumer task does it too)."""
        while (event := self._events.get_nowait()) is not None:
            self._on_event(event)

    def _on_event(self, event: se.SessionEvent) -> None:
        try:
            rt = self._connectors.get(event.connector_id)
            if rt is None:
                return
            if isinstance(event, se.SessionStarted):
                self._announce(rt, event)
            elif isinstance(event, se.SessionEnded) and event.summary is not None:
                self._session_ended(rt, event.summary)
            elif isinstance(event, se.ConsumerOverflow):  # cannot happen at its size: say so
                log.error("the station port lost %d session events", event.lost)
        except Exception:
            log.exception("connector %s: session event bookkeeping failed", event.connector_id)

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # the energy manager must never take the charger down
                log.exception("energy control step failed")
            await asyncio.sleep(self.control_interval)

    # -- helpers -------------------------------------------------------------------------------

    def _curve(self, now: float) -> PriceCurve:
        source = self._prices_source
        return source if isinstance(source, PriceCurve) else source(now)

    def _rt(self, connector: str) -> _Connector:
        try:
            return self._connectors[connector]
        except KeyError:
            raise CommandRejected(f"unknown connector {connector!r}") from None

    def _live(self, connector: str) -> tuple[Any, SessionSummary | None]:
        """(SeccConnection or None, the running session's summary or None), through the
        server's public accessors."""
        return self.server.connection(connector), self.server.live_summary(connector)

    def _session(self, connector: str) -> tuple[Any, SessionSummary]:
        """(SeccConnection, summary) of the running session, else CommandRejected."""
        conn, summary = self._live(connector)
        if summary is None or conn is None or conn.session is None:
            raise CommandRejected(f"no session on connector {connector}")
        return conn, summary

    def _post(self, connector: str, kind: str, data: dict[str, Any] | None = None) -> None:
        payload = dict(data or {})
        self.events.append((connector, kind, payload))
        bridge = self.bridge
        if bridge is not None:
            bridge.post_event(connector, kind, payload)

    def _notify(self) -> None:
        if self.bridge is not None:
            self.bridge.notify_state()

    def _epoch_offset(self) -> float:
        return self.clock() - asyncio.get_running_loop().time()

    def soc(self, conn: Any) -> float | None:
        """The EV's SOC in percent from what it shows (None: nothing yet)."""
        session = conn.session if conn is not None else None
        if session is None:
            return None
        capacity = (session.battery_capacity_wh / 1000.0 if session.battery_capacity_wh
                    else self.policy.capacity_kwh)
        target = session.display_target_soc if session.display_target_soc is not None else (
            session.target_soc)
        return estimate_soc(capacity_kwh=capacity, target_soc=target,
                            target_energy_wh=session.ev_target_energy_wh,
                            present_soc=session.present_soc)

    # -- limits --------------------------------------------------------------------------------

    def limits(self, connector: str) -> EvseLimits:
        """What applies on the connector now: rated, capped by `limits` commands; no charging
        during a grid outage (there is no grid to charge from)."""
        return capped_limits(self._rated, self._rt(connector).caps, outage=self.v2h.active)

    def bounded_limits(self, connector: str) -> EvseLimits:
        """`limits` within the CSMS's bound when OCPP runs (docs/ocpp.md "Arbitration"): what
        the state shows and a `setpoint` is checked against (the SECC clamps to it anyway)."""
        lim, b = self.limits(connector), self.server.power_bound(connector)
        return lim if b is None else bounded(lim, b.max_charge_power, b.max_discharge_power)

    @staticmethod
    def _connector_limits(lim: EvseLimits) -> ConnectorLimits:
        return ConnectorLimits(lim.max_charge_power, lim.max_discharge_power,
                               lim.max_charge_current, lim.max_discharge_current)

    # -- server hooks --------------------------------------------------------------------------

    def config_for(self, connector: str) -> SeccConfig:
        """The SeccConfig of a new connection on `connector` (SeccServer.connection_config)."""
        base = self.server.config
        rt = self._connectors.get(connector)
        if rt is None:
            return base
        try:
            self._begin_connection(rt)
            changes: dict[str, Any] = {}
            lim = self.limits(connector)
            if lim != base.limits:
                if lim.bidirectional or not (BPT_SERVICES & set(base.services)):
                    changes["limits"] = lim
                else:  # no discharge allowed now: offer no BPT service to this EV
                    services = tuple(s for s in base.services if s not in BPT_SERVICES)
                    if services:
                        changes.update(limits=lim, services=services)
            if self.plan_schedules:
                changes["schedule_provider"] = rt.guarded
            if self.mqtt_authorization:
                changes["auto_authorize"] = False
            config = dataclasses.replace(base, **changes) if changes else base
            rt.sent_limits = config.limits
            return config
        except Exception:  # never refuse an EV because of the energy manager
            log.exception("connector %s: per-connection configuration failed", connector)
            return base

    def _begin_connection(self, rt: _Connector) -> None:
        now = self.clock()
        if not rt.prices_from_mqtt:  # the tariff's daily profile, anchored to today
            rt.provider.set_prices(self._curve(now))
        rt.plan_before = rt.provider.last_plan
        rt.paused = False
        self._cancel_auth(rt)

    def _policy_failed(self, connector: str) -> Callable[[str], None]:
        def report(message: str) -> None:
            log.warning("connector %s: %s", connector, message)
            self._post(connector, "warning", {"code": "energy_policy", "message": message})

        return report

    def _authorize_hook(self, request: ev.RequestAuthorization, connector: str
                        ) -> bool | Awaitable[bool]:
        rt = self._connectors.get(connector)
        if not self.mqtt_authorization or request.method != "EIM" or rt is None:
            previous = self._previous_authorize
            return True if previous is None else previous(request, connector)
        conn, summary = self._live(connector)
        self.drain_events()  # its SessionStarted is queued: announce it first
        self._cancel_auth(rt)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        rt.pending_auth, rt.auth_method, rt.conn = future, request.method, conn
        self._post(connector, "authorization_requested", {
            "method": request.method, "evcc_id": request.evcc_id,
            "session_id": summary.session_id if summary else None})
        self._notify()
        log.info("connector %s: %s authorization of %s waits for the MQTT authorize command",
                 connector, request.method, request.evcc_id)
        return future

    @staticmethod
    def _cancel_auth(rt: _Connector) -> None:
        if rt.pending_auth is not None and not rt.pending_auth.done():
            rt.pending_auth.cancel()
        rt.pending_auth = None

    def _session_ended(self, rt: _Connector, summary: SessionSummary) -> None:
        conn = self.server.connection(rt.id)
        self._cancel_auth(rt)
        rt.paused = summary.paused
        plan = rt.provider.last_plan if rt.provider.last_plan is not rt.plan_before else None
        self._post(rt.id, "session_stopped", {
            "session_id": summary.session_id, "reason": summary.reason,
            "failed": summary.failed, "paused": summary.paused,
            "energy_in_kwh": round(summary.energy_in_wh / 1000.0, 6),
            "energy_out_kwh": round(summary.energy_out_wh / 1000.0, 6)})
        self._sample_soc(rt, conn, force=True)
        if self.reports_dir is not None:
            self._write_report(rt, summary, plan)
        rt.announced = None
        rt.override_w = rt.applied_w = rt.replan = None
        self._notify()

    # -- the control step ----------------------------------------------------------------------

    def tick(self) -> None:
        """One control step (the task calls it every `control_interval`)."""
        loop = asyncio.get_running_loop()
        hal_now = self.server.station.hal_time(loop.time())
        dt = None if self._last_hal is None else hal_now - self._last_hal
        self._last_hal = hal_now
        self._watch_broker()
        share = self._v2h_share() if self.v2h.active else 0
        changed = False
        for connector in self.server.station.connectors:
            rt = self._connectors[connector.id]
            conn, summary = self._live(connector.id)
            if rt.pending_auth is not None and conn is not rt.conn:
                self._cancel_auth(rt)  # that connection is gone
                changed = True
            fault = connector.controller.fault
            if fault != rt.fault_seen:
                rt.fault_seen = fault
                if fault:
                    self._post(rt.id, "fault", {"code": "hal", "message": fault})
                changed = True
            if summary is None or conn is None or conn.session is None or conn.closed:
                continue
            self._sample_soc(rt, conn)
            self._apply_limits(rt)
            try:
                self._control(rt, conn, share, dt)
            except Exception as exc:
                if rt.replan is None:
                    raise
                # a re-plan that fails to steer: back to the ScheduleExchange schedule
                rt.replan = None
                self._policy_failed(rt.id)(f"energy policy failed, the session follows its "
                                           f"ScheduleExchange schedule: {exc!r}")
        if changed:
            self._notify()

    def _announce(self, rt: _Connector, started: se.SessionStarted) -> None:
        if rt.announced is started:
            return
        rt.announced = started
        rt.conn = self.server.connection(rt.id)
        rt.override_w = rt.applied_w = rt.replan = None
        rt.id_token = None
        rt.soc_log = []
        rt.last_soc_sample = -math.inf
        rt.price_history = [(started.at, rt.provider.prices)]
        self.v2h.forget(rt.id)
        self._post(rt.id, "session_started", {
            "session_id": started.session_id, "evcc_id": started.evcc_id,
            "protocol": "ISO15118-20", "resumed": started.resumed})
        self._notify()

    def _sample_soc(self, rt: _Connector, conn: Any, force: bool = False) -> None:
        now = self.clock()
        if not force and now - rt.last_soc_sample < 1.0:
            return
        soc = self.soc(conn)
        if soc is None or len(rt.soc_log) >= MAX_SOC_SAMPLES:
            return
        rt.last_soc_sample = now
        rt.soc_log.append((now, soc))

    def _apply_limits(self, rt: _Connector) -> None:
        lim = self.limits(rt.id)
        if lim != rt.sent_limits:
            rt.sent_limits = lim
            self.server.send_event(rt.id, ev.LimitsUpdated(lim))

    def _watch_broker(self) -> None:
        bridge = self.bridge
        if bridge is None:
            return
        if bridge.connected.is_set():
            self._offline_since = None
            return
        now = self.clock()
        if self._offline_since is None:
            self._offline_since = now
        elif now - self._offline_since >= self.setpoint_fallback_s:
            for rt in self._connectors.values():
                if rt.override_w is not None:
                    log.warning("connector %s: no broker for %.0f s: the MQTT setpoint expires, "
                                "the local energy policy takes over", rt.id,
                                now - self._offline_since)
                    rt.override_w = None

    def _v2h_share(self) -> int:
        n = 0
        for connector in self.server.station.connectors:
            conn = self.server.connection(connector.id)
            s = conn.session if conn is not None else None
            if (conn is not None and s is not None and s.bpt
                    and s.control_mode == ControlMode.DYNAMIC and conn.state in LOOP_STATES):
                n += 1
        return n

    def _control(self, rt: _Connector, conn: Any, share: int, dt: float | None) -> None:
        session = conn.session
        if session.control_mode != ControlMode.DYNAMIC:
            return
        want: float | None
        if self.v2h.active:
            soc = self.soc(conn)
            if not (session.bpt and conn.state in LOOP_STATES) or soc is None:
                want = 0.0
            else:
                ev_lim = session.ev
                max_w = self.limits(rt.id).max_discharge_power
                if ev_lim is not None:
                    max_w = min(max_w, ev_lim.max_discharge_power)
                capacity = (session.battery_capacity_wh / 1000.0
                            if session.battery_capacity_wh else self.policy.capacity_kwh)
                # horizon: a new setpoint takes effect one control step and one EV charge
                # loop later, and the SOC we see is as old: plan two steps ahead
                horizon = None if dt is None else 2.0 * dt
                result, newly = self.v2h.step(rt.id, soc=soc, share=share, max_discharge_w=max_w,
                                              minimum_soc=session.minimum_soc,
                                              capacity_kwh=capacity, dt=horizon)
                want = result.power_w + 0.0
                if newly:
                    log.info("connector %s: V2H reserve SOC reached at %.1f %%", rt.id, soc)
                    self._post(rt.id, "v2h_reserve_reached", {"soc_percent": round(soc, 2)})
        elif rt.override_w is not None:  # precedence: evse.aio.setpoint_arbiter docstring
            want = rt.override_w
        elif rt.replan is not None:
            want = setpoint_at(rt.replan, self.clock())
        else:
            want = None  # the ScheduleExchange plan (the SECC follows it by itself)
        if want != rt.applied_w:
            rt.applied_w = want
            self.server.send_event(rt.id, ev.SetpointUpdated(want))

    # -- StationPort ---------------------------------------------------------------------------

    def connectors(self) -> Sequence[str]:
        return list(self._connectors)

    def state(self, connector: str) -> ConnectorState:
        rt = self._rt(connector)
        c = self.server.station.connector(connector)
        conn, summary = self._live(connector)
        st = c.controller.status()
        lim = self.bounded_limits(connector)
        if st.fault:
            session_state = "fault"
        elif summary is None or conn is None:
            session_state = "paused" if rt.paused else (
                "connected" if conn is not None and not conn.closed
                else "idle")
        elif rt.pending_auth is not None:
            session_state = "authorizing"
        elif conn.state in LOOP_STATES:
            session_state = ("charging" if st.power > FLOW_W else
                             "discharging" if st.power < -FLOW_W else "suspended")
        elif conn.state in _STOPPING:
            session_state = "stopping"
        else:
            session_state = "preparing"
        protocol = control_mode = session_id = None
        energy_in = energy_out = 0.0
        setpoint = None
        if summary is not None:
            session_id = summary.session_id
            protocol = "ISO15118-20"
            if summary.service_id in SERVICE_NAMES:
                protocol += " " + SERVICE_NAMES[summary.service_id]
            control_mode = MODE_NAMES.get(summary.control_mode or 0)
            start_in, start_out = summary.energy_start
            energy_in = round((c.controller.energy_in_wh - start_in) / 1000.0, 6)
            energy_out = round((c.controller.energy_out_wh - start_out) / 1000.0, 6)
            if conn is not None:
                setpoint = conn.charger.setpoint_w
        return ConnectorState(
            session_state=session_state, rated=self._connector_limits(self._rated),
            limits=self._connector_limits(lim), protocol=protocol, control_mode=control_mode,
            session_id=session_id, soc=self.soc(conn) if summary is not None else None,
            voltage=st.voltage, current=st.current, power=st.power, energy_in_kwh=energy_in,
            energy_out_kwh=energy_out, setpoint_w=setpoint, fault=st.fault,
            grid_outage=self.v2h.active,
            ev=self._ev_needs(conn) if summary is not None else None)

    def _ev_needs(self, conn: Any) -> EvNeeds | None:
        """The EV's departure, SOC window, battery and limits, for the `ev` state object
        (rounded: the state is re-published on every change)."""
        session = conn.session if conn is not None else None
        if session is None:
            return None
        lim = session.ev
        target = session.target_soc
        if target is None and lim is not None:
            target = lim.target_soc
        departure = (round(session.departure_at + self._epoch_offset(), 1)
                     if session.departure_at is not None else None)

        def r(x: float | None, digits: int) -> float | None:
            return None if x is None else round(x, digits)

        return EvNeeds(
            departure=departure, target_soc=r(target, 1), minimum_soc=r(session.minimum_soc, 1),
            capacity_kwh=r(session.battery_capacity_wh / 1000.0
                           if session.battery_capacity_wh else None, 3),
            energy_to_target_kwh=r(session.ev_target_energy_wh / 1000.0
                                   if session.ev_target_energy_wh is not None else None, 3),
            max_charge_power_w=r(lim.max_charge_power, 0) if lim is not None else None,
            max_discharge_power_w=r(lim.max_discharge_power, 0) if lim is not None else None)

    def authorize(self, connector: str, id_token: str, granted: bool) -> None:
        rt = self._rt(connector)
        future = rt.pending_auth
        if future is None or future.done():
            raise CommandRejected(f"no session is waiting for authorization on connector "
                                  f"{connector}")
        rt.pending_auth = None
        rt.id_token = id_token
        future.set_result(granted)
        log.info("connector %s: %s authorization %s over MQTT (token %s)", connector,
                 rt.auth_method, "granted" if granted else "denied", id_token)
        self._notify()

    def set_setpoint(self, connector: str, watts: float | None) -> None:
        rt = self._rt(connector)
        conn, _ = self._session(connector)
        session = conn.session
        if session.control_mode != ControlMode.DYNAMIC:
            mode = MODE_NAMES.get(int(session.control_mode or 0), "not selected yet")
            raise CommandRejected("setpoints need the ISO 15118-20 Dynamic control mode "
                                  f"(this session: {mode})")
        if self.v2h.active:
            raise CommandRejected("grid outage: the EV supplies the home (V2H) until the grid "
                                  "is back")
        if watts is not None:
            lim = self.bounded_limits(connector)
            if not math.isfinite(watts):
                raise CommandRejected("the setpoint must be a finite number")
            if watts > lim.max_charge_power + 1e-6:
                raise CommandRejected(f"{_kw(watts)} kW is above the charge power limit "
                                      f"max_charge_power {_kw(lim.max_charge_power)} kW")
            if watts < 0 and not session.bpt:
                raise CommandRejected("discharging needs a bidirectional (BPT) session")
            if -watts > lim.max_discharge_power + 1e-6:
                raise CommandRejected(f"{_kw(watts)} kW is beyond the discharge power limit "
                                      f"max_discharge_power {_kw(lim.max_discharge_power)} kW")
        rt.override_w = watts
        want = watts
        if want is None and rt.replan is not None:
            want = setpoint_at(rt.replan, self.clock())
        rt.applied_w = want
        self.server.send_event(connector, ev.SetpointUpdated(want))

    def set_limits(self, connector: str, limits: LimitsUpdate) -> None:
        rt = self._rt(connector)
        r = self._rated
        for name, value, rated in (
                ("max_charge_power", limits.max_charge_power_w, r.max_charge_power),
                ("max_discharge_power", limits.max_discharge_power_w, r.max_discharge_power),
                ("max_charge_current", limits.max_charge_current_a, r.max_charge_current),
                ("max_discharge_current", limits.max_discharge_current_a,
                 r.max_discharge_current)):
            if value is not None and not (math.isfinite(value) and 0 <= value <= rated + 1e-6):
                raise CommandRejected(f"{name}: {value:g} outside [0, {rated:g}] (rated)")
        caps = rt.caps
        for name in ("max_charge_power_w", "max_discharge_power_w", "max_charge_current_a",
                     "max_discharge_current_a"):
            value = getattr(limits, name)
            if value is not None:
                setattr(caps, name, value)
        if limits.max_charge_current_a is not None:  # basic AC charging: the duty follows
            notify_current_limit(self.server, connector, limits.max_charge_current_a)
        if self.server.live_summary(connector) is not None:
            self._apply_limits(rt)

    def set_prices(self, connector: str, prices: PriceCurve) -> None:
        """Plan with `prices` on a copy of the connector's planner first; store them only when
        that plan succeeds (else CommandRejected, and nothing changes)."""
        rt = self._rt(connector)
        conn, summary = self._live(connector)
        live = summary is not None and conn is not None
        conn = conn if live else None
        session = conn.session if conn is not None else None
        dynamic = (conn is not None and session is not None and self.plan_schedules
                   and session.control_mode == ControlMode.DYNAMIC
                   and conn.state in LOOP_STATES)
        trial = PlanningScheduleProvider(prices, rt.provider.policy)
        try:
            replan = limits = None
            if dynamic and conn is not None:
                replan, limits = self._replan(trial, conn), conn.charger.limits
            self._reference_plan(trial, connector, replan, limits)
        except Exception as exc:  # the planner's own words name the problem
            log.warning("connector %s: prices refused, the plan failed: %r", connector, exc)
            raise CommandRejected(f"the plan with these prices failed ({exc}); the previous "
                                  "prices stay") from None
        rt.provider.set_prices(prices)
        rt.prices_from_mqtt = True
        if not live:
            return
        rt.price_history.append((self.clock(), prices))
        if replan is not None:
            rt.replan = replan
            log.info("connector %s: new prices, Dynamic session re-planned", connector)

    def _reference_plan(self, trial: PlanningScheduleProvider, connector: str,
                        replan: Plan | None, limits: EvseLimits | None) -> None:
        """Plan (or take `replan`, made within `limits`) and turn it into the schedules a
        ScheduleExchangeRes would carry, checked as the guard checks them: raises whatever
        fails on the way."""
        lim = limits if limits is not None else self.limits(connector)
        bpt = lim.bidirectional
        now = self.clock()
        p = replan if replan is not None else trial.make_plan(
            now=now, departure=now + self.policy.default_departure_s,
            soc=self.policy.unknown_soc, target_soc=None, minimum_soc=None, ev_limits=None,
            evse_limits=lim, bpt=bpt)
        if p.slots:
            check_schedules(trial.to_schedules(p, now=now, bpt=bpt), lim, bpt)

    def _replan(self, provider: PlanningScheduleProvider, conn: Any) -> Plan:
        session = conn.session
        now = self.clock()
        departure = (session.departure_at + self._epoch_offset()
                     if session.departure_at is not None
                     else now + self.policy.default_departure_s)
        soc = self.soc(conn)
        target = session.target_soc
        if target is None and session.ev is not None:
            target = session.ev.target_soc
        capacity = (session.battery_capacity_wh / 1000.0 if session.battery_capacity_wh
                    else None)
        return provider.make_plan(
            now=now, departure=max(departure, now + 1.0),
            soc=self.policy.unknown_soc if soc is None else soc, target_soc=target,
            minimum_soc=session.minimum_soc, ev_limits=session.ev,
            evse_limits=conn.charger.limits, bpt=session.bpt, capacity_kwh=capacity)

    def stop(self, connector: str) -> None:
        self._rt(connector)
        self._session(connector)
        self.server.stop_session(connector, "stop requested by the energy manager")

    def pause(self, connector: str) -> None:
        self._rt(connector)
        conn, _ = self._session(connector)
        if conn.state not in LOOP_STATES:
            raise CommandRejected(f"pause: only in the charge loop (the session is in "
                                  f"{conn.state})")
        self.server.send_event(connector, ev.PauseRequested("pause requested by the energy "
                                                            "manager"))

    def set_outage(self, active: bool, home_load_w: float | None = None) -> None:
        """The grid is down (True) or back (False); `home_load_w`: the house's load."""
        if home_load_w is not None and not (math.isfinite(home_load_w) and home_load_w >= 0):
            raise CommandRejected(f"home load must be >= 0 W, got {home_load_w!r}")
        if not self.v2h.set_outage(active, home_load_w):
            return
        if active:
            self._outages.append([self.clock(), math.inf])
        elif self._outages:
            self._outages[-1][1] = self.clock()
        del self._outages[:-100]  # the reports need only the recent ones
        log.warning("grid %s%s", "outage: V2H" if active else "back",
                    f", home load {self.v2h.home_load_w / 1000.0:g} kW" if active else "")
        for rt in self._connectors.values():
            self._post(rt.id, "grid_outage" if active else "grid_restored",
                       {"home_load_kw": round(self.v2h.home_load_w / 1000.0, 6)}
                       if active else {})
        with contextlib.suppress(RuntimeError):  # no running loop: the next tick does it
            self.tick()
        self._notify()

    # -- reports (evse.aio.session_reports) ----------------------------------------------------

    @property
    def report_paths(self) -> deque[ReportPaths]:
        """The latest reports written (the files stay)."""
        return self.reports.paths

    @property
    def last_record(self) -> SessionRecord | None:
        """The latest session's report record."""
        return self.reports.last_record

    def session_record(self, rt: _Connector, summary: SessionSummary,
                       plan: Plan | None = None) -> SessionRecord:
        """The session's report record: samples with SOC and prices, the money summary."""
        return session_record(
            summary, self.station_id, soc_log=rt.soc_log,
            price_history=rt.price_history or [(-math.inf, rt.provider.prices)],
            policy=self.policy, id_token=rt.id_token, plan=plan, outages=self._outages,
            max_charge_w=float(self._rated.max_charge_power or 0.0))

    def _write_report(self, rt: _Connector, summary: SessionSummary, plan: Plan | None) -> None:
        self.reports.write(self.session_record(rt, summary, plan))

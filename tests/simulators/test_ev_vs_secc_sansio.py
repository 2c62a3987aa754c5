"""Our EVCC against our SECC (`evse.protocol.secc.SeccConnection`), back to back in memory.

No sockets: a discrete-event loop on a fake clock carries the frames both ways (1 ms each
way), plays a minimal charger around the SECC (cable check passes, precharge reaches the
target, the measured current is the commanded one, the output drops when the contactors
open) and opens a new SeccConnection, sharing the SessionStore, when the EV reconnects.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

secc_mod = pytest.importorskip("evse.protocol.secc")

from evse.protocol import events as sev  # noqa: E402
from evse.protocol.config import ControlMode as SeccControlMode  # noqa: E402
from evse.protocol.config import SeccConfig, ServiceId  # noqa: E402
from evse.protocol.limits import EvLimits, EvseLimits, cap  # noqa: E402
from evse.protocol.schedules import PowerEntry, Schedules  # noqa: E402
from evse.protocol.session import SessionStore  # noqa: E402
from simulators.ev import (  # noqa: E402
    Evcc,
    Failed,
    Finished,
    Reconnect,
    SendData,
    SessionReport,
    get_scenario,
)

EPOCH = 1_750_000_000.0
LIMITS = EvseLimits(
    max_charge_power=150_000.0, max_charge_current=200.0, max_voltage=920.0, min_voltage=150.0,
    max_discharge_power=50_000.0, max_discharge_current=100.0,
)


@dataclass(frozen=True)
class WindowProvider:
    """Charge, but discharge between t0 and t1 real seconds after ScheduleExchange (BPT)."""

    t0: float = 1.0
    t1: float = 2.0

    def schedules(self, now: float, departure_time: int | None, ev_limits: EvLimits | None,
                  evse_limits: EvseLimits, bpt: bool) -> Schedules:
        ev_max = ev_limits.max_charge_power if ev_limits else None
        charge = cap(evse_limits.max_charge_power, ev_max)
        rest = 3600
        if not bpt:
            return Schedules(start=now, charging=(PowerEntry(rest, charge),))
        discharge = cap(evse_limits.max_discharge_power,
                        ev_limits.max_discharge_power if ev_limits else None)
        a, b = int(self.t0), int(self.t1 - self.t0)
        return Schedules(
            start=now,
            charging=(PowerEntry(a, charge), PowerEntry(b, 0.0), PowerEntry(rest, charge)),
            discharging=(PowerEntry(a, 0.0), PowerEntry(b, discharge), PowerEntry(rest, 0.0)),
        )


def config(**kw: Any) -> SeccConfig:
    base: dict[str, Any] = dict(
        services=(ServiceId.DC, ServiceId.DC_BPT, ServiceId.AC, ServiceId.AC_BPT),
        control_modes=(SeccControlMode.SCHEDULED, SeccControlMode.DYNAMIC),
        limits=LIMITS,
        evse_id="DE*EVS*E0000001",
        schedule_provider=WindowProvider(),
    )
    base.update(kw)
    return SeccConfig(**base)


@dataclass
class Run:
    report: SessionReport
    effect: Finished | Failed
    secc_effects: list[Any]
    ended: list[sev.SessionEnded]
    connections: int
    voltage_trace: list[float] = field(default_factory=list)


def back_to_back(
    scenario: Any,
    cfg: SeccConfig | None = None,
    *,
    at_loop: dict[int, sev.Event] | None = None,
    latency: float = 0.001,
    auth_delay: float = 0.3,
    grant: bool = True,
    cable_check_time: float = 0.25,
    t0: float = 100.0,
    peer_certificates: Sequence[bytes | None] = (),
    store: SessionStore | None = None,
) -> Run:
    """`peer_certificates[i]`: the vehicle certificate (DER) the i-th connection presents in
    TLS (None or missing: none); `store`: share paused sessions with another run."""
    cfg = cfg or config()
    store = store if store is not None else SessionStore()
    battery = scenario.battery.make()
    evcc = Evcc(scenario, battery=battery, epoch_offset=EPOCH)
    queue: list[tuple[float, int, str, Any]] = []
    seq = itertools.count()
    secc_effects: list[Any] = []
    ended: list[sev.SessionEnded] = []
    pending_triggers = dict(at_loop or {})
    now = t0
    connections = 0
    conn: Any = None

    def push(at: float, kind: str, payload: Any) -> None:
        heapq.heappush(queue, (at, next(seq), kind, payload))

    def new_connection(at: float) -> None:
        nonlocal conn, connections
        connections += 1
        peer = peer_certificates[connections - 1] if connections <= len(peer_certificates) \
            else None
        conn = secc_mod.SeccConnection(cfg, tls=True, now=at, session_store=store,
                                       epoch_offset=EPOCH, peer_certificate=peer)
        push(at + latency, "secc", (conn, evcc.start(at)))

    def charger(effects: list[Any], c: Any, at: float) -> None:
        """Play the charger: turn the SECC's effects into its next inputs."""
        for e in effects:
            secc_effects.append(e)
            if isinstance(e, sev.SendData):
                if c is conn:
                    push(at + latency, "ev", e.data)
            elif isinstance(e, sev.StartCableCheck):
                push(at + cable_check_time, "event", (c, sev.CableCheckFinished(True)))
            elif isinstance(e, sev.StartPreCharge):
                charger(c.handle_event(sev.MeasurementsUpdated(e.target_voltage, 0.0), at), c, at)
            elif isinstance(e, sev.SetPowerTarget):
                if evcc.scenario.service.is_dc:
                    v = battery.terminal_voltage_at(e.current)
                    m = sev.MeasurementsUpdated(v, e.current)
                else:
                    m = sev.MeasurementsUpdated(e.voltage, e.current, present_power=e.power)
                charger(c.handle_event(m, at), c, at)
            elif isinstance(e, sev.OpenContactors):
                charger(c.handle_event(sev.MeasurementsUpdated(0.0, 0.0), at), c, at)
            elif isinstance(e, sev.RequestAuthorization):
                answer: sev.Event = (
                    sev.AuthorizationGranted("demo") if grant else sev.AuthorizationDenied("no")
                )
                push(at + auth_delay, "event", (c, answer))
            elif isinstance(e, sev.SessionEnded):
                ended.append(e)
            elif isinstance(e, sev.CloseConnection):
                push(at + e.after_s, "close", c)

    new_connection(now)
    for _ in range(100_000):
        for loop_no in sorted(pending_triggers):
            if evcc.loops >= loop_no:
                charger(conn.handle_event(pending_triggers.pop(loop_no), now), conn, now)
        times = [queue[0][0]] if queue else []
        for deadline in (evcc.next_deadline(), conn.next_deadline() if conn else None):
            if deadline is not None:
                times.append(deadline)
        assert times, f"deadlock: EV in {evcc.state}, SECC in {conn.state}"
        now = max(now, min(times))
        ev_effects: list[Any] = []
        if queue and queue[0][0] <= now:
            _, _, kind, payload = heapq.heappop(queue)
            if kind == "secc":
                c, data = payload
                charger(c.receive_data(data, now), c, now)
            elif kind == "ev":
                ev_effects = evcc.receive_data(payload, now)
            elif kind == "event":
                c, event = payload
                charger(c.handle_event(event, now), c, now)
            elif kind == "reconnect":
                new_connection(now)
            elif kind == "close" and payload is conn:
                ev_effects = evcc.connection_lost(now)
        else:
            if conn.next_deadline() is not None and conn.next_deadline() <= now:
                charger(conn.handle_timeout(now), conn, now)
            deadline = evcc.next_deadline()
            if deadline is not None and deadline <= now:
                ev_effects = evcc.handle_timeout(now)
        for e in ev_effects:
            if isinstance(e, SendData):
                push(now + latency, "secc", (conn, e.data))
            elif isinstance(e, Reconnect):
                push(now + e.delay, "reconnect", None)
            elif isinstance(e, (Finished, Failed)):
                return Run(e.report, e, secc_effects, ended, connections)
    raise AssertionError("the session did not end")


def scenario(name: str, **kw: Any) -> Any:
    kw.setdefault("loop_sim_seconds", 30.0)
    return get_scenario(name, **kw)


def secc_requests(run: Run) -> list[str]:
    return run.report.request_sequence


@pytest.mark.parametrize("name", ["dc", "dc_dynamic", "ac", "ev_stop"])
def test_charging_scenarios(name: str) -> None:
    run = back_to_back(scenario(name))
    assert isinstance(run.effect, Finished), run.effect
    report = run.report
    assert report.success
    assert report.energy_charged_wh > 0 and report.final_soc > report.initial_soc
    assert report.evse_id == "DE*EVS*E0000001"
    assert run.ended and run.ended[-1].failed is False
    assert report.states[-1] == "Finished" and not report.timing_violations
    # The SECC's Ongoing answers while authorization/cable check were pending were repeated.
    assert report.request_sequence.count("AuthorizationReq") >= 2
    if get_scenario(name).service.is_dc:
        assert report.request_sequence.count("DC_CableCheckReq") >= 2


def test_dc_charge_to_target_soc() -> None:
    run = back_to_back(scenario("dc", max_loops=None, target_soc=60.0, loop_sim_seconds=120.0))
    assert run.report.success and run.report.reason == "target_soc"
    assert run.report.final_soc >= 60.0


def test_dc_bpt_scheduled_discharges_in_the_seccs_window() -> None:
    run = back_to_back(scenario("dc_bpt_scheduled", max_loops=30, discharge_loops=None))
    assert isinstance(run.effect, Finished), run.effect
    targets = [e for e in run.secc_effects if isinstance(e, sev.SetPowerTarget)]
    assert any(t.current < 0 for t in targets) and any(t.current > 0 for t in targets)
    report = run.report
    assert report.energy_discharged_wh > 0 and report.energy_charged_wh > 0


def test_dc_bpt_scheduled_forced_window_with_permissive_discharging_schedule() -> None:
    @dataclass(frozen=True)
    class Both:
        """Charging and discharging both allowed all the time: the EV picks the direction."""

        def schedules(self, now: float, *_: Any) -> Schedules:
            return Schedules(start=now, charging=(PowerEntry(3600, 50_000.0),),
                             discharging=(PowerEntry(3600, 20_000.0),))

    run = back_to_back(scenario("dc_bpt_scheduled"), config(schedule_provider=Both()))
    assert isinstance(run.effect, Finished), run.effect
    assert run.report.energy_discharged_wh > 0


def test_dc_bpt_dynamic_follows_the_chargers_setpoint() -> None:
    run = back_to_back(
        scenario("dc_bpt_dynamic", max_loops=12),
        at_loop={4: sev.SetpointUpdated(-20_000.0), 8: sev.SetpointUpdated(30_000.0)},
    )
    assert isinstance(run.effect, Finished), run.effect
    targets = [e.current for e in run.secc_effects if isinstance(e, sev.SetPowerTarget)]
    assert min(targets) < 0 < max(targets)
    assert run.report.energy_discharged_wh > 0


def test_ac_bpt_scheduled_discharges_in_the_seccs_window() -> None:
    run = back_to_back(scenario("ac_bpt", max_loops=30, discharge_loops=None))
    assert isinstance(run.effect, Finished), run.effect
    assert run.report.energy_discharged_wh > 0 and run.report.energy_charged_wh > 0


def test_ac_bpt_dynamic_follows_the_chargers_setpoint() -> None:
    run = back_to_back(
        scenario("ac_bpt_dynamic", max_loops=10),
        at_loop={2: sev.SetpointUpdated(-7_000.0), 6: sev.SetpointUpdated(9_000.0)},
    )
    assert isinstance(run.effect, Finished), run.effect
    assert run.report.energy_discharged_wh > 0 and run.report.energy_charged_wh > 0


def test_pause_resume_joins_the_old_session() -> None:
    run = back_to_back(scenario("pause_resume"))
    assert isinstance(run.effect, Finished), run.effect
    report = run.report
    assert report.connections == 2 and run.connections == 2
    setups = [m for m in report.messages if m.request == "SessionSetupReq"]
    assert [m.response_code for m in setups] == ["OK_NewSessionEstablished", "OK_OldSessionJoined"]
    seq = report.request_sequence
    second = seq.index("SessionSetupReq", seq.index("SessionStopReq"))
    assert seq[second + 1] == "DC_ChargeParameterDiscoveryReq"
    assert [e.paused for e in run.ended] == [True, False]


def test_charger_stop_request_is_signalled_with_terminate() -> None:
    run = back_to_back(scenario("emergency_stop"),
                       at_loop={3: sev.StopRequested("operator stop")})
    assert isinstance(run.effect, Finished), run.effect
    assert run.report.reason == "evse_terminate"
    assert "DC_ChargeLoopRes:Terminate" in run.report.evse_notifications
    assert run.report.request_sequence[-1] == "SessionStopReq"
    assert run.ended[-1].failed is False


def test_emergency_stop_fails_the_session_with_terminate() -> None:
    run = back_to_back(scenario("emergency_stop"), at_loop={3: sev.EmergencyStop("e-stop")})
    assert isinstance(run.effect, Finished), run.effect  # the scenario expects exactly this
    assert run.report.request_sequence[-1] == "DC_ChargeLoopReq"
    assert run.report.messages[-1].response_code.startswith("FAILED")
    assert run.ended[-1].failed is True
    stop = next(i for i, e in enumerate(run.secc_effects) if isinstance(e, sev.StopPower))
    send = next(i for i, e in enumerate(run.secc_effects)
                if i > stop and isinstance(e, sev.SendData))
    assert stop < send  # power off before the FAILED response


def test_a_normal_scenario_fails_on_emergency_stop() -> None:
    run = back_to_back(scenario("dc"), at_loop={2: sev.EmergencyStop("e-stop")})
    assert isinstance(run.effect, Failed)
    assert run.effect.reason.startswith("DC_ChargeLoopRes: FAILED")


def test_authorization_never_granted_ends_after_the_seccs_ongoing_limit() -> None:
    run = back_to_back(scenario("dc"), auth_delay=1e9)  # the backend never answers
    assert isinstance(run.effect, Failed)
    assert run.effect.reason == "connection closed by the SECC in Authorization"
    assert run.ended[-1].reason == "EVSEProcessing=Ongoing for too long"
    auth = [m for m in run.report.messages if m.request == "AuthorizationReq"]
    assert 54.0 < auth[-1].sent_at - auth[0].sent_at < 60.0  # SECC: 55 s, EV: 60 s


def test_authorization_denied_fails() -> None:
    run = back_to_back(scenario("dc"), grant=False)
    assert isinstance(run.effect, Failed)
    assert run.effect.reason.startswith("authorization refused: WARNING_")
    assert run.report.request_sequence[-1] == "AuthorizationReq"


@pytest.mark.parametrize(
    ("name", "loop"),
    [("dc_renegotiation", "DC_ChargeLoopReq"), ("ac", "AC_ChargeLoopReq"),
     ("dc_dynamic", "DC_ChargeLoopReq")],
)
def test_ev_initiated_schedule_renegotiation(name: str, loop: str) -> None:
    run = back_to_back(scenario(name, renegotiate_after_loops=3, max_loops=8))
    assert isinstance(run.effect, Finished), run.effect
    assert run.report.success and run.ended[-1].failed is False
    seq = secc_requests(run)
    i = seq.index("ScheduleExchangeReq", seq.index(loop))  # the second ScheduleExchange
    assert seq[i - 1] == "PowerDeliveryReq" and seq[i - 2] == loop
    assert seq[i + 1] == "PowerDeliveryReq" and seq[i + 2] == loop
    assert seq.count(loop) == 8
    # The contactors closed once and stayed closed while the loop went on: renegotiation
    # only took the current away.
    kinds = [type(e).__name__ for e in run.secc_effects]
    assert kinds.count("CloseContactors") == 1
    last_target = len(kinds) - 1 - kinds[::-1].index("SetPowerTarget")
    assert kinds.index("OpenContactors") > last_target


class _BrokenPolicy:
    """An energy policy that raises, or returns schedules no ScheduleExchangeRes can carry."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def schedules(self, now: float, *_: Any) -> Schedules:
        from evse.protocol.schedules import PriceRule, PriceSchedule

        if self.mode == "raise":
            raise ZeroDivisionError("policy bug")
        absurd = PriceSchedule(rules=(PriceRule(start=0, energy_fee=1e150),))
        return Schedules(start=now, charging=(PowerEntry(3600, 50_000.0),), price=absurd)


@pytest.mark.parametrize("mode", ["raise", "absurd_price"])
@pytest.mark.parametrize("name", ["dc", "dc_bpt_dynamic"])
def test_an_energy_policy_error_never_fails_the_session(name: str, mode: str) -> None:
    """Issue 11 item 4: whatever provider is configured (not only the station port's guarded
    one), a failing policy gives the EV the default schedule and the session charges."""
    run = back_to_back(scenario(name, max_loops=6), config(schedule_provider=_BrokenPolicy(mode)))
    assert isinstance(run.effect, Finished), run.effect
    assert run.report.success and run.report.energy_charged_wh > 0
    warnings = [e for e in run.secc_effects if isinstance(e, sev.ReportWarning)]
    assert [w.code for w in warnings] == ["energy_policy"]

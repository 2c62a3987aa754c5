"""SeccStationPort without a broker: per-connection configuration, validation, V2H runner."""

from __future__ import annotations

import pytest

from evse._mqtt_api import CommandRejected, LimitsUpdate
from evse.aio.secc_server import SeccServer, Station
from evse.aio.station_port import SeccStationPort
from evse.aio.v2h_runner import V2hRunner
from evse.energy.guard import GuardedScheduleProvider
from evse.energy.prices import PriceCurve
from evse.energy.provider import PlanningScheduleProvider
from evse.protocol.config import ServiceId
from hal.backends.sim import SimBackend
from tests.aio.helpers import HOST, secc_config


def _port(n: int = 2, **kw: object) -> tuple[SeccServer, SeccStationPort]:
    station = Station.from_backends([SimBackend() for _ in range(n)])
    server = SeccServer(secc_config(), station, address=HOST, port=0)
    return server, SeccStationPort(server, station_id="S", **kw)  # type: ignore[arg-type]


def test_installs_itself_on_the_server() -> None:
    server, port = _port(mqtt_authorization=True)
    assert server.connection_config == port.config_for
    assert server.authorize == port._authorize_hook
    config = server.config_for("1")
    assert isinstance(config.schedule_provider, GuardedScheduleProvider)
    assert isinstance(config.schedule_provider.inner, PlanningScheduleProvider)
    assert config.schedule_provider is not server.config_for("2").schedule_provider
    assert config.auto_authorize is False and server.config.auto_authorize is True


def test_limits_survive_and_shape_new_connections() -> None:
    server, port = _port()
    port.set_limits("1", LimitsUpdate(max_charge_power_w=7000.0))
    assert server.config_for("1").limits.max_charge_power == 7000.0
    assert server.config_for("2").limits.max_charge_power == server.config.limits.max_charge_power
    port.set_limits("1", LimitsUpdate(max_discharge_power_w=0.0))
    config = server.config_for("1")  # no discharge allowed: no BPT offered
    assert ServiceId.DC_BPT not in config.services and ServiceId.DC in config.services
    assert config.limits.max_charge_power == 7000.0  # the earlier cap stays
    with pytest.raises(CommandRejected, match="max_charge_power: 1e\\+06 outside"):
        port.set_limits("1", LimitsUpdate(max_charge_power_w=1e6))
    state = port.state("1")
    assert state.session_state == "idle" and state.limits is not None
    assert state.limits.max_charge_power_w == 7000.0 and state.limits.max_discharge_power_w == 0


def test_commands_without_a_session_are_rejected() -> None:
    _, port = _port()
    for call in (lambda: port.set_setpoint("1", 1000.0), lambda: port.stop("1"),
                 lambda: port.pause("1"), lambda: port.authorize("1", "t", True)):
        with pytest.raises(CommandRejected):
            call()
    with pytest.raises(CommandRejected, match="unknown connector"):
        port.state("7")


def test_prices_per_connector() -> None:
    server, port = _port()
    curve = PriceCurve.flat(0.11, 0.07)
    port.set_prices("2", curve)
    provider = server.config_for("2").schedule_provider
    assert isinstance(provider, GuardedScheduleProvider)
    assert isinstance(provider.inner, PlanningScheduleProvider)
    assert provider.inner.prices is curve
    other = server.config_for("1").schedule_provider
    assert isinstance(other, GuardedScheduleProvider)
    assert isinstance(other.inner, PlanningScheduleProvider) and other.inner.prices is not curve


def test_outage_caps_charging_everywhere() -> None:
    server, port = _port()
    port.set_outage(True, 2500.0)
    assert port.v2h.active and port.v2h.home_load_w == 2500.0
    assert port.state("1").grid_outage and port.limits("2").max_charge_power == 0.0
    assert [e[1] for e in port.events] == ["grid_outage", "grid_outage"]
    port.set_outage(False)
    assert port.limits("1").max_charge_power == server.config.limits.max_charge_power
    with pytest.raises(CommandRejected):
        port.set_outage(True, -1.0)


def test_v2h_runner_shares_the_load_and_latches_at_the_reserve() -> None:
    runner = V2hRunner(reserve_soc=30.0)
    runner.set_outage(True, 6000.0)
    sp, newly = runner.step("1", soc=50.0, share=2, max_discharge_w=10_000.0)
    assert sp.power_w == -3000.0 and not newly
    sp, _ = runner.step("1", soc=50.0, share=1, max_discharge_w=2000.0)
    assert sp.power_w == -2000.0 and sp.unmet_load_w == 4000.0
    sp, newly = runner.step("1", soc=29.9, share=1, max_discharge_w=10_000.0)
    assert sp.power_w == 0.0 and newly
    sp, newly = runner.step("1", soc=30.5, share=1, max_discharge_w=10_000.0)
    assert sp.power_w == 0.0 and not newly  # latched until 1 % above the reserve
    sp, _ = runner.step("2", soc=40.0, share=1, max_discharge_w=10_000.0, minimum_soc=45)
    assert sp.power_w == 0.0  # the EV's MinimumSOC is above its SOC
    assert runner.set_outage(False) and not runner.set_outage(False)


def test_cli_grid_outage_and_demo_reports_options() -> None:
    from evse.cli import build_parser

    ns = build_parser("secc").parse_args(["secc", "--grid-outage", "5:2.5"])
    assert ns.grid_outage == (5.0, 2.5)
    assert build_parser("secc").parse_args(["secc", "--grid-outage", "7"]).grid_outage == (
        7.0, 3.0)
    with pytest.raises(SystemExit):
        build_parser("secc").parse_args(["secc", "--grid-outage", "soon"])
    ns = build_parser("demo").parse_args(["demo", "--reports", "/tmp/x"])
    assert str(ns.reports) == "/tmp/x"


async def test_sessions_are_announced_from_the_event_stream_not_by_the_control_step() -> None:
    """session_started goes out when the session starts, even when the control step never
    runs during the session (it used to be found by polling the connections every step)."""
    import asyncio

    from simulators.ev.client import run_session
    from tests.aio.helpers import Rig, fast_scenario

    station = Station.from_backends([SimBackend()], speedup=10.0)
    server = SeccServer(secc_config(), station, address=HOST, port=0, poll_interval=0.01)
    port = SeccStationPort(server, station_id="S", plan_schedules=False,
                           control_interval=3600.0)  # one step at start(), then none
    started_while_running: list[bool] = []

    async with server:
        port.start()
        ev = asyncio.create_task(run_session(fast_scenario("dc", max_loops=40), host=HOST,
                                             port=server.port, battery=Rig(server,
                                                                           station).link()))
        for _ in range(500):
            if any(kind == "session_started" for _, kind, _ in port.events):
                started_while_running.append(not server.sessions)
                break
            await asyncio.sleep(0.01)
        report = await asyncio.wait_for(ev, 30)
        await port.flush_reports()
        await port.close()
    assert report.success
    assert started_while_running == [True]  # announced while the session ran
    kinds = [kind for _, kind, _ in port.events]
    assert kinds == ["session_started", "session_stopped"]
    started = port.events[0][2]
    assert started["evcc_id"] == "WEVSESTACKSIM0001" and started["protocol"] == "ISO15118-20"
    assert started["session_id"] == port.events[1][2]["session_id"]

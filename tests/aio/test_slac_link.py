"""The link adapters end to end: plug-in -> 5 % -> SLAC match -> session allowed -> unplug,
with the simulated car and the simulated modem, over an in-process medium and (as root)
over AF_PACKET raw sockets on a veth pair between two network namespaces."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from evse.aio.slac_link import (
    ConnectorLink,
    FrameTransport,
    InProcessMedium,
    RawSocketTransport,
    SlacLink,
)
from evse.link import pilot as pl
from evse.link.slac import SlacAttemptFailed, SlacConfig, SlacEffect
from evse.link.slac_messages import VALIDATE_FAILURE
from hal.backends.sim import SimBackend
from hal.interfaces import PilotState
from simulators.plc_modem import PlcModemSim, SimulatedModemTransport, next_door
from simulators.slac_ev import EvSlacBehaviour, EvSlacFailed, ev_slac
from tests.aio.netns import in_netns, require_root, veth_pair

EVSE_MAC = bytes.fromhex("020000000e5e")
CAR_MAC = bytes.fromhex("0a0000000ca1")
CAR2_MAC = bytes.fromhex("0a0000000ca2")
# Loose timings: the machine is shared; the fake-clock tests check the standard's values.
LOOSE = dict(match_response=1.0, match_sequence=2.0, time_out_units=30)
EV_LOOSE = EvSlacBehaviour().scaled(5.0)
WAIT = 20.0


@dataclass
class Rig:
    board_backend: SimBackend
    link: ConnectorLink
    slac: SlacLink
    modem: PlcModemSim
    ev_transport: Callable[[bytes], FrameTransport]
    failures: list[SlacAttemptFailed]


async def next_event(link: ConnectorLink, kind: type, timeout: float = WAIT) -> pl.PilotEffect:
    async def find() -> pl.PilotEffect:
        while True:
            effect = await link.events.get()
            if isinstance(effect, kind):
                return effect
    return await asyncio.wait_for(find(), timeout)


async def wait_duty(board: SimBackend, duty: float, timeout: float = WAIT) -> None:
    async def poll() -> None:
        while board.board.pwm_duty != duty:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def rig(evse_transport: FrameTransport, ev_transport: Callable[[bytes], FrameTransport],
              **slac_changes: object) -> AsyncIterator[Rig]:
    backend = SimBackend()
    modem = PlcModemSim(host_mac=evse_transport.mac)
    failures: list[SlacAttemptFailed] = []
    config = SlacConfig(evse_mac=evse_transport.mac, **{**LOOSE, **slac_changes})  # type: ignore[arg-type]
    host = SimulatedModemTransport(evse_transport, modem)
    async with SlacLink(host, config) as slac, \
            ConnectorLink(backend.board, slac, poll_interval=0.02) as link:
        inner = slac.listener

        def listen(effect: SlacEffect) -> None:
            if isinstance(effect, SlacAttemptFailed):
                failures.append(effect)
            assert inner is not None
            inner(effect)
        slac.listener = listen
        yield Rig(backend, link, slac, modem, ev_transport, failures)


async def plug_match_unplug(r: Rig) -> None:
    board = r.board_backend
    assert board.board.pwm_duty == 100.0
    board.board.set_ev_pilot_state(PilotState.B)
    await wait_duty(board, 5.0)
    result = await ev_slac(r.ev_transport(CAR_MAC), EV_LOOSE)
    allowed = await next_event(r.link, pl.SessionAllowed)
    assert allowed == pl.SessionAllowed("hlc")
    # the car got the key our modem runs: the two modems are in one network
    assert result.evse_mac == r.slac.transport.mac
    assert r.modem.nmk == result.nmk and r.modem.nid == result.nid
    assert r.modem.profiles_sent >= 1 and r.slac.core.key_confirmed
    times = r.link.pilot.times
    assert times.plugged_at is not None and times.slac_matched_at is not None
    assert times.plugged_at <= times.slac_started_at <= times.slac_matched_at  # type: ignore[operator]
    # the car's own CM_SET_KEY broadcast reached us and was ignored
    await asyncio.sleep(0.1)
    assert r.slac.core.ignored["set_key_req"] >= 1
    board.board.set_ev_pilot_state(PilotState.C)
    assert (await next_event(r.link, pl.EnergyAllowed)).allowed  # type: ignore[union-attr]
    board.board.set_ev_pilot_state(PilotState.A)
    assert await next_event(r.link, pl.EndSession) == pl.EndSession("unplugged")
    await wait_duty(board, 100.0)
    assert r.link.pilot.times.unplugged_at is not None
    # a new plug-in: a fresh NMK
    old = result.nmk
    board.board.set_ev_pilot_state(PilotState.B)
    await wait_duty(board, 5.0)
    again = await ev_slac(r.ev_transport(CAR_MAC), EV_LOOSE)
    assert again.nmk != old and r.modem.nmk == again.nmk


@contextlib.asynccontextmanager
async def in_process_rig(**changes: object) -> AsyncIterator[Rig]:
    medium = InProcessMedium()
    async with rig(medium.port(EVSE_MAC), medium.port, **changes) as r:
        yield r


@contextlib.asynccontextmanager
async def veth_rig(**changes: object) -> AsyncIterator[Rig]:
    """The charger's raw socket in one namespace, each car's in the other: a veth pair is
    the PLC medium; the simulated modem sits between the charger's SLAC and its socket."""
    require_root()
    cars: list[RawSocketTransport] = []
    with veth_pair() as pair:
        with in_netns(pair.evse_ns):
            evse = RawSocketTransport(pair.evse_if)

        def ev_port(mac: bytes) -> FrameTransport:
            with in_netns(pair.ev_ns):
                port = RawSocketTransport(pair.ev_if)
            port.mac = mac  # the car's MAC on the PLC side
            cars.append(port)
            return port

        try:
            async with rig(evse, ev_port, **changes) as r:
                yield r
        finally:
            for car in cars:
                car.close()


RIGS = {"in_process": in_process_rig, "veth": veth_rig}


@pytest.fixture(params=sorted(RIGS))
def open_rig(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return RIGS[request.param]


async def test_plug_slac_match_unplug(open_rig: Callable[..., Any]) -> None:
    async with open_rig() as r:
        await plug_match_unplug(r)


async def test_car_that_never_answers_then_retries(open_rig: Callable[..., Any]) -> None:
    async with open_rig() as r:
        r.board_backend.board.set_ev_pilot_state(PilotState.B)
        await wait_duty(r.board_backend, 5.0)
        with pytest.raises(EvSlacFailed):
            await ev_slac(r.ev_transport(CAR_MAC),
                          EvSlacBehaviour(answer_atten_char=False).scaled(5.0))
        while not r.failures:
            await asyncio.sleep(0.05)
        assert "no CM_ATTEN_CHAR.RSP" in r.failures[0].reason
        # the pilot counted the failure and waits for the car's next attempt, which matches
        assert r.link.pilot.phase == pl.Phase.WAIT_SLAC
        result = await ev_slac(r.ev_transport(CAR_MAC), EV_LOOSE)
        assert r.modem.nmk == result.nmk


async def test_wrong_run_id_gets_no_match_late_answer_matches(
        open_rig: Callable[..., Any]) -> None:
    async with open_rig() as r:
        r.board_backend.board.set_ev_pilot_state(PilotState.B)
        await wait_duty(r.board_backend, 5.0)
        with pytest.raises(EvSlacFailed, match="CM_SLAC_MATCH.CNF"):
            await ev_slac(r.ev_transport(CAR_MAC), EvSlacBehaviour(wrong_run_id=True))
        assert r.slac.core.ignored["unknown_run_id"] >= 2
        # late, but inside the repeats of CM_ATTEN_CHAR.IND (3 x 1 s here); and validating
        late = EvSlacBehaviour(atten_rsp_delay=1.2, validate=True).scaled(5.0)
        result = await ev_slac(r.ev_transport(CAR_MAC), late)
        assert result.validate_result == VALIDATE_FAILURE


async def test_two_cars_at_once_one_match(open_rig: Callable[..., Any]) -> None:
    async with open_rig() as r:
        r.board_backend.board.set_ev_pilot_state(PilotState.B)
        await wait_duty(r.board_backend, 5.0)
        cars = await asyncio.gather(
            ev_slac(r.ev_transport(CAR_MAC), EV_LOOSE),
            ev_slac(r.ev_transport(CAR2_MAC), EV_LOOSE), return_exceptions=True)
        matched = [c for c in cars if not isinstance(c, BaseException)]
        assert len(matched) == 1, cars
        assert any(isinstance(c, EvSlacFailed) for c in cars)
        assert r.modem.nmk == matched[0].nmk  # type: ignore[union-attr]
        assert (await next_event(r.link, pl.SessionAllowed)).mode == "hlc"  # type: ignore[union-attr]


async def test_car_next_door_is_heard_with_its_attenuation(open_rig: Callable[..., Any]) -> None:
    async with open_rig() as r:
        r.modem.attenuation = next_door
        r.board_backend.board.set_ev_pilot_state(PilotState.B)
        await wait_duty(r.board_backend, 5.0)
        await ev_slac(r.ev_transport(CAR_MAC), EV_LOOSE)
        assert r.modem.profiles_sent == 10


async def test_pilot_fault_gives_safe_state(open_rig: Callable[..., Any]) -> None:
    async with open_rig() as r:
        r.board_backend.board.set_ev_pilot_state(PilotState.B)
        await wait_duty(r.board_backend, 5.0)
        await ev_slac(r.ev_transport(CAR_MAC), EV_LOOSE)
        r.board_backend.board.set_ev_pilot_state(PilotState.E)
        assert await next_event(r.link, pl.SafeState) == pl.SafeState("pilot E")
        await wait_duty(r.board_backend, 100.0)


async def test_basic_charging_duty_follows_the_limit() -> None:
    backend = SimBackend()
    async with ConnectorLink(backend.board, None, pl.PilotConfig(
            digital_communication=False, max_current=16.0), poll_interval=0.02) as link:
        backend.board.set_ev_pilot_state(PilotState.B)
        await wait_duty(backend, 26.7)
        assert await next_event(link, pl.SessionAllowed) == pl.SessionAllowed("basic")
        backend.board.set_ev_pilot_state(PilotState.C)
        assert (await next_event(link, pl.EnergyAllowed)).allowed  # type: ignore[union-attr]
        link.set_current_limit(63.0)
        assert backend.board.pwm_duty == 89.2


def test_root_tests_skip_without_root_but_fail_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_root()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but not root"):
        require_root()


async def test_car_without_digital_communication_falls_back_to_basic_charging() -> None:
    """No CM_SLAC_PARM.REQ: E/F step (the board reads F, no fault), a fresh 5 %, then the
    nominal duty; the car goes to C and charges; the limit changes the duty. Short timers
    (the standard's are 20 s and 4 s; the fake-clock tests check those)."""
    medium = InProcessMedium()
    backend = SimBackend()
    config = pl.PilotConfig(slac_init_timeout=0.3, ef_step=0.2, max_current=16.0)
    host = SimulatedModemTransport(medium.port(EVSE_MAC), PlcModemSim(host_mac=EVSE_MAC))
    async with SlacLink(host) as slac, \
            ConnectorLink(backend.board, slac, config, poll_interval=0.02) as link:
        backend.board.set_ev_pilot_state(PilotState.B)
        names = []
        while (effect := await next_event(link, pl.LinkEvent)).name != "basic_charging":
            names.append(effect.name)  # type: ignore[union-attr]
        assert names == ["plugged", "slac_init_timeout", "ef_step", "slac_init_timeout"]
        assert backend.board.pwm_duty == 26.7
        assert await next_event(link, pl.SessionAllowed) == pl.SessionAllowed("basic")
        backend.board.set_ev_pilot_state(PilotState.C)
        assert (await next_event(link, pl.EnergyAllowed)).allowed  # type: ignore[union-attr]
        link.set_current_limit(32.0)
        assert backend.board.pwm_duty == 53.3
        backend.board.set_ev_pilot_state(PilotState.A)
        assert await next_event(link, pl.EndSession) == pl.EndSession("unplugged")
        assert link.pilot.phase == pl.Phase.IDLE

"""A pilot-driven connector taken out of service through the SECC's public method
(`SeccServer.set_in_service`, what OCPP ChangeAvailability Inoperative calls): a car plugging
in gets no PWM and no SLAC; back in service, the car still plugged in gets 5 % and matches."""

from __future__ import annotations

import asyncio

from hal.interfaces import PilotState
from simulators.slac_ev import ev_slac
from tests.aio.test_connector_link import CAR_MAC, EV_LOOSE, linked, until


async def test_out_of_service_connector_starts_no_pwm_and_no_slac() -> None:
    async with linked() as r:
        board = r.rig.connector().backend.board
        r.rig.server.set_in_service("1", False)
        r.pilot(PilotState.B)
        await until(lambda: any(e.name == "out_of_service" for e in r.wiring.events),
                    what="the plug-in seen")
        await asyncio.sleep(0.3)  # several pilot polls: still nothing
        assert board.pwm_duty == 100.0 and not r.wiring.session_allowed
        assert not any(e.name == "slac_started" for e in r.wiring.events)
        r.rig.server.set_in_service("1", True)
        await until(lambda: board.pwm_duty == 5.0, what="5 % duty")
        await ev_slac(r.medium.port(CAR_MAC), EV_LOOSE)
        await until(lambda: r.wiring.session_allowed, what="session allowed")
        assert not r.rig.server.out_of_service

"""The simulated -2 EV against the real SeccServer over TCP on loopback (sim HAL): DC and
AC sessions complete with no FAILED response, the power stage ends safe, the session shows
up in the server's records with the -2 namespace."""

from __future__ import annotations

import dataclasses

import pytest

from evse.protocol.standards import ISO2
from simulators.ev.client import Endpoint
from simulators.ev.iso2_client import drive_iso2
from simulators.ev.iso2_evcc import ISO2_SCENARIOS, Iso2Evcc
from tests.aio.helpers import HOST, assert_safe_sequence, running


@pytest.mark.parametrize("name", ["iso2_dc", "iso2_ac", "iso2_dc_pause",
                                  "iso2_dc_renegotiation", "iso2_dc_all_protocols"])
async def test_iso2_session_over_tcp(name: str) -> None:
    async with running(protocols=("iso20", "iso2")) as rig:
        backend = rig.connector().backend
        dc = "_ac" not in name
        scenario = dataclasses.replace(ISO2_SCENARIOS[name], loops=20)  # time for a ramp
        ev = Iso2Evcc(scenario, battery=backend.ev_battery if dc else None,
                      on_contactors=lambda closed: setattr(backend, "ev_contactor_closed",
                                                           closed) if dc else None)
        run = await drive_iso2(ev, Endpoint(HOST, rig.port),
                               response_timeout=5.0, repeat_interval=0.02)
        assert run.success, run.summary()
        assert not [c for _, c in run.done.log if c.startswith("FAILED")]
        await rig.wait_safe(timeout=5.0)
        assert_safe_sequence(rig)
        sessions = list(rig.server.sessions)
        assert sessions and all(s.protocol == ISO2 for s in sessions)
        assert sessions[-1].failed is False
        if name == "iso2_dc_pause":
            assert [s.paused for s in sessions] == [True, False] and sessions[1].resumed
        assert sum(s.energy_in_wh for s in sessions) > 0  # the meter saw the charge
        assert rig.server.errors == 0

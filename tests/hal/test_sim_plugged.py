"""`--hal sim:plugged`: the sim board starts with a car plugged in (B), which goes to C when
the charger closes the contactors for it (the car asks for energy)."""

from __future__ import annotations

import pytest

from hal.backends.sim import SimBackend
from hal.interfaces import PilotState
from hal.registry import create_backend_from_spec


def test_sim_plugged_spec_starts_in_b_then_c_on_closing() -> None:
    backend = create_backend_from_spec("sim:plugged")
    board = backend.board
    assert board.pilot_state is PilotState.B
    board.set_pwm_duty(5.0)
    board.close_contactors()
    assert board.pilot_state is PilotState.C


def test_plain_sim_has_no_car_and_closing_does_not_invent_one() -> None:
    board = SimBackend().board
    assert board.pilot_state is PilotState.A
    board.close_contactors()
    assert board.pilot_state is PilotState.A


def test_unplugging_the_plugged_car_is_the_tests_business() -> None:
    board = SimBackend(plugged=True).board
    board.set_ev_pilot_state(PilotState.A)
    board.close_contactors()
    assert board.pilot_state is PilotState.A  # an unplugged car does not come back


def test_unknown_sim_target_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        SimBackend(target="unplugged")

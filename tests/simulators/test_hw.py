"""simulators.hw: the pty symlink, the fault-injection commands, the printed --hal spec."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simulators.hw import SimulatedHardware, run_command


def test_symlink_to_the_pty_and_cleanup(tmp_path: Path) -> None:
    link = tmp_path / "mcu"
    link.symlink_to("/nonexistent")  # a stale link from an earlier run is replaced
    hw = SimulatedHardware(pty_link=link, can="virtual:hw-unit-1")
    try:
        assert os.readlink(link) == hw.pty.port
        assert hw.hal_spec == f"serial:{link},can:virtual:hw-unit-1,sim"
    finally:
        hw.close()
    assert not link.exists() and not link.is_symlink()


def test_a_regular_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.write_text("keep")
    with pytest.raises(FileExistsError):
        SimulatedHardware(pty_link=path, can=None)
    assert path.read_text() == "keep"


def test_commands_inject_faults() -> None:
    hw = SimulatedHardware(can="virtual:hw-unit-2")
    try:
        assert "estop" in run_command(hw, "help")
        run_command(hw, "estop")
        assert hw.mcu.estop_button and hw.mcu.estop_latched
        run_command(hw, "release")
        assert not hw.mcu.estop_button
        run_command(hw, "silent")
        assert hw.mcu.silent
        run_command(hw, "talk")
        assert not hw.mcu.silent
        run_command(hw, "weld")
        run_command(hw, "repair")
        assert not hw.mcu.welded
        assert hw.rack is not None
        run_command(hw, "drop 1")
        assert hw.rack.modules[1].dropped
        run_command(hw, "restore 1")
        assert not hw.rack.modules[1].dropped
        run_command(hw, "stale")
        assert hw.rack.mute_outputs
        run_command(hw, "fresh")
        assert not hw.rack.mute_outputs
        assert "ValueError" in run_command(hw, "drop x")
        assert "MCU" in run_command(hw, "status")
    finally:
        hw.close()


def test_without_modules_the_charger_brings_its_own() -> None:
    hw = SimulatedHardware(can=None)
    try:
        assert hw.hal_spec.endswith(",can:virtual+sim,sim")
        assert "RuntimeError" in run_command(hw, "drop 0")
    finally:
        hw.close()

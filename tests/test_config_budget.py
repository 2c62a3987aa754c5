"""evse/config.py, [network]: the read budget and paused-session age, and their wiring."""

from __future__ import annotations

import pytest

from evse.aio.read_budget import ReadBudget
from evse.config import ConfigError, loads_config
from tests.test_config import MINIMAL


def test_defaults_are_the_read_budget_defaults() -> None:
    net = loads_config(MINIMAL).network
    assert net.read_budget == ReadBudget() and net.paused_session_max_age_s == 86400.0


def test_keys_are_read_and_checked() -> None:
    net = loads_config(MINIMAL + "read_slice = 512\nread_bytes_per_window = 4096\n"
                       "read_window_s = 0.05\nmax_bytes_without_message = 100000\n"
                       "paused_session_max_age_s = 600\n").network
    assert net.read_budget == ReadBudget(512, 0.05, 4096, 100000)
    assert net.paused_session_max_age_s == 600.0
    with pytest.raises(ConfigError) as info:
        loads_config(MINIMAL + "read_slice = 8192\nread_bytes_per_window = 4096\n")
    assert any("network.read_bytes_per_window" in e for e in info.value.errors)
    with pytest.raises(ConfigError) as info:
        loads_config(MINIMAL + "max_bytes_without_message = 1000\n")
    assert any("network.max_bytes_without_message" in e for e in info.value.errors)

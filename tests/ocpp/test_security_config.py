"""The [ocpp] keys of the station's certificate renewal and security events (docs/config.md)."""

from __future__ import annotations

from pathlib import Path

from evse.config import loads_config
from tests.test_config import MINIMAL, errors_of

BASE = '\n[ocpp]\nurl = "ws://csms"\npassword = "pw"\n'


def test_renewal_and_event_keys(tmp_path: Path) -> None:
    cfg = loads_config(MINIMAL + BASE, base_dir=tmp_path).ocpp
    assert cfg is not None
    assert (cfg.renew_before_days, cfg.renew_check_s, cfg.tls_event_window_s) == (
        30.0, 3600.0, 60.0)
    assert cfg.client_ca_file is None and cfg.v2g_roots is None
    cfg = loads_config(MINIMAL + BASE + 'renew_before_days = 7\nrenew_check_s = 60\n'
                       'v2g_roots = "v2g.pem"\ntls_event_window_s = 5\n',
                       base_dir=tmp_path).ocpp
    assert cfg is not None
    assert (cfg.renew_before_days, cfg.renew_check_s, cfg.tls_event_window_s) == (7, 60, 5)
    assert cfg.v2g_roots == tmp_path / "v2g.pem"
    for key in ("renew_before_days", "renew_check_s", "tls_event_window_s"):
        errors = errors_of(MINIMAL + BASE + f"{key} = 0\n")
        assert any(e.startswith(f"ocpp.{key}") for e in errors), (key, errors)

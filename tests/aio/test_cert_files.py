"""A renewed certificate and its key replace the old pair as one step (evse/aio/cert_files.py):
whatever moment a crash hits, `recover_pair` leaves a matching pair - the old or the new."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from evse.aio import cert_files
from evse.aio.cert_files import install_pair, recover_pair

OLD = (b"old chain", b"old key")
NEW = (b"new chain", b"new key")


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    chain, key = tmp_path / "secc_chain.pem", tmp_path / "secc.key"
    chain.write_bytes(OLD[0])
    key.write_bytes(OLD[1])
    return chain, key


def _state(chain: Path, key: Path) -> tuple[bytes, bytes]:
    return chain.read_bytes(), key.read_bytes()


def test_install_replaces_both_and_leaves_nothing_staged(tmp_path: Path) -> None:
    chain, key = _pair(tmp_path)
    install_pair(chain, key, *NEW)
    assert _state(chain, key) == NEW
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secc.key", "secc_chain.pem"]
    assert recover_pair(chain, key) is None


@pytest.mark.parametrize("crash_after", range(4))
def test_a_crash_at_any_step_recovers_to_a_matching_pair(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int) -> None:
    """Crash after 0..3 of the install's file operations (stage key, stage chain, rename
    key, rename chain): the recovery gives the old pair before the commit point (the staged
    chain), the new pair after it - never a new key beside an old chain."""
    chain, key = _pair(tmp_path)
    steps = {"n": 0}
    real_write, real_rename = cert_files.atomic_write, cert_files._rename

    def counted(fn):  # type: ignore[no-untyped-def]
        def run(*a, **k):  # type: ignore[no-untyped-def]
            if steps["n"] == crash_after:
                raise KeyboardInterrupt("power lost")
            fn(*a, **k)
            steps["n"] += 1
        return run

    monkeypatch.setattr(cert_files, "atomic_write", counted(real_write))
    monkeypatch.setattr(cert_files, "_rename", counted(real_rename))
    with pytest.raises(KeyboardInterrupt):
        install_pair(chain, key, *NEW)
    monkeypatch.undo()
    done = recover_pair(chain, key)
    expected = OLD if crash_after < 2 else NEW
    assert _state(chain, key) == expected
    assert done == ({0: None, 1: "rolled back"}.get(crash_after, "completed"))
    assert not list(tmp_path.glob("*.new")) and not list(tmp_path.glob(".*.tmp"))
    assert recover_pair(chain, key) is None  # idempotent

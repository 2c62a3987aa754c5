"""A certificate and its key on disk, replaced so that a crash or power loss at any moment
leaves a pair that belongs together (the old one or the new one).

Two files cannot be renamed at once, so a new pair is staged first: `<key>.new`, then
`<chain>.new` (each complete and fsynced; the staged chain is the commit point), then both are
renamed over the old files. `recover_pair`, run before the files are loaded, finishes a
committed install (the staged chain exists) or drops a half-staged one (only the key).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "install_pair", "recover_pair"]

log = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # a rename itself survives a power loss
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`path` holds the old bytes or the new ones, never a part: a temporary file beside it
    (created with `mode`, so a key is never readable by others, not even for a moment),
    fsynced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _staged(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def install_pair(chain_file: Path, key_file: Path, chain: bytes, key: bytes) -> None:
    """Replace the chain and its key as one step (see the module doc)."""
    atomic_write(_staged(key_file), key, 0o600)
    atomic_write(_staged(chain_file), chain)  # committed from here on
    _finish(chain_file, key_file)


def _rename(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    _fsync_dir(dst.parent)


def _finish(chain_file: Path, key_file: Path) -> None:
    if _staged(key_file).exists():
        _rename(_staged(key_file), key_file)
    _rename(_staged(chain_file), chain_file)


def recover_pair(chain_file: Path, key_file: Path) -> str | None:
    """Before loading the pair: complete or roll back an install a crash interrupted.
    Returns what was done ("completed" / "rolled back"), None when nothing was pending."""
    if _staged(chain_file).exists():
        _finish(chain_file, key_file)
        log.warning("completed the interrupted install of %s and %s", chain_file, key_file)
        return "completed"
    if _staged(key_file).exists():
        os.unlink(_staged(key_file))
        log.warning("dropped a half-staged key %s (the old pair stays)", _staged(key_file))
        return "rolled back"
    return None

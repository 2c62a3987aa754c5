"""Network namespaces and veth pairs for the root link tests: created and removed by the
test; sockets are opened inside a namespace by switching the calling thread there for the
duration of a `with` block (setns(2) through libc; sockets keep their namespace)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

CLONE_NEWNET = 0x40000000


def require_root() -> None:
    """Skip without root, but fail on CI (CI=true) where the root tests must run."""
    if os.geteuid() == 0:
        return
    reason = "needs root (network namespaces, veth, AF_PACKET)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but not root: {reason}")
    pytest.skip(reason)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back failed")
    finally:
        os.close(own)
        os.close(target)


@dataclass(frozen=True)
class VethPair:
    evse_ns: str
    ev_ns: str
    evse_if: str = "plc0"
    ev_if: str = "plc0"


@contextlib.contextmanager
def veth_pair() -> Iterator[VethPair]:
    tag = uuid.uuid4().hex[:8]
    pair = VethPair(f"evse-{tag}", f"ev-{tag}")
    _ip("netns", "add", pair.evse_ns)
    try:
        _ip("netns", "add", pair.ev_ns)
        _ip("link", "add", f"s{tag}", "type", "veth", "peer", "name", f"e{tag}")
        _ip("link", "set", f"s{tag}", "netns", pair.evse_ns, "name", pair.evse_if)
        _ip("link", "set", f"e{tag}", "netns", pair.ev_ns, "name", pair.ev_if)
        for ns, ifname in ((pair.evse_ns, pair.evse_if), (pair.ev_ns, pair.ev_if)):
            _ip("-n", ns, "link", "set", ifname, "up")
        yield pair
    finally:
        for ns in (pair.evse_ns, pair.ev_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

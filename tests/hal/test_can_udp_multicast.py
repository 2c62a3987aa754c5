"""One run of the `can` backend over real sockets: python-can's udp_multicast interface.

The virtual bus never touches the kernel; this test does (UDP datagrams, msgpack-encoded
frames, select() on a socket). The group is IPv6 *interface-local* scope (ff01::/16): the
kernel loops such datagrams back to local members and never sends them on a link, so the
test stays on this machine. udp_multicast needs the msgpack package.
"""

from __future__ import annotations

import importlib.util
import random
import time

import pytest

from hal.backends.can import CanBackend, ModuleHealth
from hal.interfaces import PowerSupplyMode
from simulators.can_module import ModuleRack

GROUP = "ff01::4556:5345"  # interface-local: never leaves the host


def _bus(port: int):  # type: ignore[no-untyped-def]
    import can

    return can.Bus(interface="udp_multicast", channel=GROUP, port=port, fd=False)


def test_modules_over_udp_multicast_sockets() -> None:
    if importlib.util.find_spec("msgpack") is None:
        pytest.skip("python-can's udp_multicast interface needs msgpack (pip install msgpack)")
    import can

    port = random.randint(40000, 59999)
    try:
        rack_bus = _bus(port)
    except (can.CanError, OSError) as exc:
        pytest.skip(f"udp_multicast unavailable here (no IPv6 multicast on loopback?): {exc}")
    backend = None
    try:
        backend = CanBackend(
            interface="udp_multicast",
            channel=GROUP,
            bus_options={"port": port, "fd": False},
            module_addresses=(1, 2),
        )
        rack = ModuleRack(rack_bus, (1, 2), connected=True)
        psu = backend.power_supply
        t = 0.0
        deadline = time.monotonic() + 10.0

        def step() -> None:
            nonlocal t
            t += 0.02
            backend.poll(t)
            rack.step(t, wait=0.01)  # datagrams cross the kernel: wait a little for them
            time.sleep(0.002)
            backend.poll(t)
            assert time.monotonic() < deadline, "udp_multicast run took too long"

        for _ in range(200):
            step()
            if all(m.health is ModuleHealth.OK for m in psu.modules.values()):
                break
        assert all(m.health is ModuleHealth.OK for m in psu.modules.values())
        psu.set_mode(PowerSupplyMode.IMPORT)
        psu.set_voltage_current(300.0, -40.0)
        for _ in range(300):
            step()
            if abs(psu.measurement().current + 40.0) < 0.01:
                break
        assert psu.measurement().current == pytest.approx(-40.0)
        assert [m.current for m in rack.modules.values()] == pytest.approx([-20.0, -20.0])
        assert psu.stats.malformed == 0 and psu.stats.receive_errors == 0
    finally:
        if backend is not None:
            backend.close()
        rack_bus.shutdown()

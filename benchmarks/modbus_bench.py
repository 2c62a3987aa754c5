"""Modbus parts: what a read costs, that the HAL's poll never waits for it, and how fast a
silent device becomes a fault. Against simulators.modbus servers on this machine.

    python benchmarks/modbus_bench.py            # about 15 s
    python benchmarks/modbus_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hal.backends.modbus import ModbusMeterBackend  # noqa: E402
from hal.backends.modbus.registers import SDM630_BLOCK_COUNT  # noqa: E402
from hal.backends.modbus.worker import make_client  # noqa: E402
from simulators.modbus import ModbusDeviceServer, Sdm630Model  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def read_latency(transport: str, samples: int) -> list[float]:
    """One SDM630 block (76 registers) per transaction, synchronous client."""
    server = ModbusDeviceServer(Sdm630Model(), transport=transport)
    options = dict(server.client_options)
    client = make_client(options.pop("transport"), **options, timeout=1.0)
    try:
        assert client.connect()
        out = []
        for _ in range(samples):
            t0 = time.perf_counter()
            rr = client.read_input_registers(0, count=SDM630_BLOCK_COUNT, device_id=1)
            out.append(time.perf_counter() - t0)
            assert not rr.isError()
        return out
    finally:
        client.close()
        server.close()


def poll_cost_and_silence(transport: str, seconds: float) -> tuple[list[float], float, float]:
    """poll() durations while the device answers then goes silent; time from silence to
    the fault and to the reading being refused (interval 0.1 s, timeout 0.3 s)."""
    model = Sdm630Model()
    server = ModbusDeviceServer(model, transport=transport)
    backend = ModbusMeterBackend(**server.client_options, interval=0.1, timeout=0.3)
    durations: list[float] = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end or backend.meter._reading is None:
            t0 = time.perf_counter()
            backend.poll(time.monotonic())
            durations.append(time.perf_counter() - t0)
            time.sleep(0.005)
        model.faults.silent = True
        silent_at = time.monotonic()
        fault_at = refused_at = None
        while refused_at is None:
            now = time.monotonic()
            t0 = time.perf_counter()
            backend.poll(now)
            durations.append(time.perf_counter() - t0)
            if fault_at is None and backend.fault is not None:
                fault_at = now
            try:
                backend.meter.reading()
            except Exception:
                refused_at = now
            time.sleep(0.005)
        return durations, (fault_at or refused_at) - silent_at, refused_at - silent_at
    finally:
        backend.close()
        server.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    samples = 30 if args.quick else 300
    seconds = 0.5 if args.quick else 3.0
    print("Modbus read of the SDM630 block (76 registers), synchronous pymodbus client")
    print(f"{'transport':<24}{'n':>6}{'median ms':>12}{'p95 ms':>10}{'max ms':>10}")
    for transport, label in (("tcp", "TCP loopback"), ("rtu", "RTU pty, 115200 Bd")):
        lat = read_latency(transport, samples)
        print(f"{label:<24}{len(lat):>6}{statistics.median(lat) * 1e3:>12.2f}"
              f"{pct(lat, 95) * 1e3:>10.2f}{max(lat) * 1e3:>10.2f}")
    print()
    print("HAL side: poll() on the event loop, and a device that goes silent")
    print(f"{'transport':<24}{'polls':>7}{'poll p50 us':>13}{'poll max us':>13}"
          f"{'fault s':>9}{'refused s':>11}")
    for transport, label in (("tcp", "TCP loopback"), ("rtu", "RTU pty, 115200 Bd")):
        durations, fault, refused = poll_cost_and_silence(transport, seconds)
        print(f"{label:<24}{len(durations):>7}{statistics.median(durations) * 1e6:>13.1f}"
              f"{max(durations) * 1e6:>13.1f}{fault:>9.2f}{refused:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""HAL benchmark: link latencies of the hardware backends and the supervisor's reaction time,
against the simulators running in threads on the real clock. Prints plain-text tables.

    python benchmarks/hal_bench.py            # full run (about 20 s)
    python benchmarks/hal_bench.py --quick    # smoke run: few samples

Rows:
- serial command -> ACK: `board.set_pwm_duty()` until the MCU's ACK has been read, with the
  simulated MCU on a pty; the host waits on the port's descriptor between polls, as an event
  loop would.
- CAN setpoint -> measurement: `set_voltage_current()` until the backend's measurement shows
  the new current, simulated modules (instant ramp) on the virtual bus; bounded below by the
  status read interval, so it is shown for two intervals.
- fault -> zero current: a serial + CAN composite under the SafetySupervisor, polled every
  `--poll-period`, charging at 100 A; a fault is injected and the clock runs until the
  modules' real current is zero (and the MCU's contacts are open).
- system level, SECC running: `evse secc`'s station (build_station: serial + CAN under the
  supervisor, SupervisedController) in a SeccServer polling every `--secc-poll` (25 ms, the
  `evse secc` default), the simulated EV charging over loopback TCP at ~100 A; a fault is
  injected and `simulators.hw.PowerTrace` (every step of the modules' physics, ~2 ms)
  gives the time to zero current and to open contacts; "EV told" is when the EV's session
  ended (its next request answered FAILED + Terminate).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import select
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import can  # noqa: E402

from hal.backends.can import CanBackend  # noqa: E402
from hal.backends.serial import SerialBackend  # noqa: E402
from hal.backends.sim import SimBackend  # noqa: E402
from hal.interfaces import PowerSupplyMode  # noqa: E402
from hal.registry import CompositeBackend, create_backend_from_spec  # noqa: E402
from hal.supervisor import SafetySupervisor  # noqa: E402
from simulators.can_module import ModuleRack, RackThread  # noqa: E402
from simulators.mcu import McuThread, PtyPair, SimulatedMcu  # noqa: E402

M = PowerSupplyMode
clock = time.monotonic


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def wait_until(cond: Callable[[], bool], poll: Callable[[], None], timeout: float) -> bool:
    end = clock() + timeout
    while clock() < end:
        poll()
        if cond():
            return True
    return False


# ---- serial ------------------------------------------------------------------------------


def bench_serial(samples: int) -> list[float]:
    with PtyPair() as pty:
        mcu = SimulatedMcu(pty.master_fd)
        runner = McuThread(mcu).start()
        backend = SerialBackend(pty.port, base=SimBackend())
        fd = backend.fileno()

        def poll() -> None:
            select.select([fd], [], [], 0.005)
            backend.poll(clock())

        try:
            link = backend.link
            if not wait_until(lambda: link.up and not link.pending, poll, 3.0):
                raise RuntimeError("the simulated MCU did not answer")
            latencies = []
            for i in range(samples):
                t0 = time.perf_counter()
                backend.board.set_pwm_duty(5.0 if i % 2 else 6.0)
                if not wait_until(lambda: not link.pending, poll, 1.0):
                    raise RuntimeError("no ACK within 1 s")
                latencies.append(time.perf_counter() - t0)
            if link.stats.retransmissions:
                print(f"  (serial: {link.stats.retransmissions} retransmissions)")
            return latencies
        finally:
            backend.close()
            runner.stop()


# ---- CAN ---------------------------------------------------------------------------------


def bench_can(samples: int, status_interval: float) -> list[float]:
    channel = f"bench-{os.getpid()}-{status_interval}"
    backend = CanBackend(
        interface="virtual",
        channel=channel,
        module_addresses=(1, 2, 3),
        status_interval=status_interval,
        module_timeout=max(0.5, 5 * status_interval),
    )
    rack_bus = can.Bus(interface="virtual", channel=channel)
    rack = ModuleRack(rack_bus, (1, 2, 3), connected=True, current_ramp=1e9)
    runner = RackThread(rack).start()
    psu = backend.power_supply

    def poll() -> None:
        time.sleep(0.0002)
        backend.poll(clock())

    try:
        if not wait_until(
            lambda: len(psu.usable_modules) == 3 and psu.measurement().timestamp > 0, poll, 3.0
        ):
            raise RuntimeError("the simulated modules did not answer")
        psu.set_mode(M.EXPORT)
        latencies = []
        rng = random.Random(1)
        for i in range(samples):
            target = 30.0 if i % 2 else 60.0
            # Setpoints come at any phase of the read cycle, not right after a read.
            pause = clock() + rng.uniform(0.0, status_interval)

            def paused(p: float = pause) -> bool:
                return clock() >= p

            def followed(a: float = target) -> bool:
                return abs(psu.measurement().current - a) < 0.05

            wait_until(paused, poll, 1.0)
            t0 = time.perf_counter()
            psu.set_voltage_current(500.0, target)
            if not wait_until(followed, poll, 2.0):
                raise RuntimeError("the measurement never followed the setpoint")
            latencies.append(time.perf_counter() - t0)
        return latencies
    finally:
        runner.stop()
        backend.close()
        rack_bus.shutdown()


# ---- supervisor --------------------------------------------------------------------------


def _inject(kind: str, mcu: SimulatedMcu, sup: SafetySupervisor, rack: ModuleRack) -> None:
    if kind == "e-stop pressed on the MCU":
        mcu.press_emergency_stop()
    elif kind == "MCU goes silent":
        mcu.silent = True
    elif kind == "over-current (EV limit lowered)":
        sup.set_limits(500.0, 50.0, 50.0)
    elif kind == "one power module faults":
        rack.set_fault(2)  # derates, does not trip: zero current is not expected
    else:
        raise ValueError(kind)


def _watch_fault(kind: str, mcu: SimulatedMcu, sup: SafetySupervisor, rack: ModuleRack,
                 t0: float, poll: Callable[[], None]) -> tuple[float, float, float]:
    """(detect, zero current, contacts open) after `t0`, NaN for what did not happen in 3 s."""
    detect = zero = opened = float("nan")
    end = t0 + 3.0
    while clock() < end:
        poll()
        now = clock()
        if detect != detect and sup.tripped:
            detect = sup.trips[0].time - t0
        if zero != zero and abs(rack.total_current) < 0.01:
            zero = now - t0
        if opened != opened and not mcu.contactors_closed:
            opened = now - t0
        if zero == zero and opened == opened:
            break
        if kind == "one power module faults" and now - t0 > 1.0:
            break
    return detect, zero, opened


def bench_fault(kind: str, poll_period: float) -> tuple[float, float, float]:
    """(detect, zero current, contacts open) in seconds after the injection."""
    channel = f"bench-fault-{os.getpid()}-{kind}"
    with PtyPair() as pty:
        mcu = SimulatedMcu(pty.master_fd)
        mcu_runner = McuThread(mcu).start()
        composite = create_backend_from_spec(
            f"serial:{pty.port},can:virtual:{channel},sim",
            {"can": {"module_addresses": [1, 2, 3]}},
            allow_simulated_parts=True,  # the bench has no isolation monitor or meter
        )
        assert isinstance(composite, CompositeBackend)
        rack_bus = can.Bus(interface="virtual", channel=channel)
        rack = ModuleRack(
            rack_bus, (1, 2, 3), connected=lambda: mcu.contactors_closed, current_ramp=2000.0
        )
        rack_runner = RackThread(rack).start()
        sup = SafetySupervisor(composite)
        serial = composite.sources["board"]
        assert isinstance(serial, SerialBackend)

        def poll() -> None:
            time.sleep(poll_period)
            sup.poll(clock())

        try:
            link = serial.link
            if not wait_until(lambda: link.up and not link.pending, poll, 3.0):
                raise RuntimeError("the simulated MCU did not answer")
            sup.set_limits(500.0, 150.0, 150.0)
            sup.board.close_contactors()
            if not wait_until(lambda: sup.board.contactors_closed, poll, 2.0):
                raise RuntimeError("contactors did not close")
            sup.power_supply.set_mode(M.EXPORT)
            sup.power_supply.set_voltage_current(500.0, 100.0)
            if not wait_until(lambda: abs(rack.total_current - 100.0) < 0.1, poll, 3.0):
                raise RuntimeError("no current")
            wait_until(lambda: False, poll, 0.2)
            t0 = clock()
            _inject(kind, mcu, sup, rack)
            return _watch_fault(kind, mcu, sup, rack, t0, poll)
        finally:
            rack_runner.stop()
            mcu_runner.stop()
            sup.close()
            rack_bus.shutdown()


# ---- system level: the SECC running -----------------------------------------------------

SYSTEM_FAULTS = (
    "e-stop pressed on the MCU",
    "over-current (EV limit lowered)",
    "MCU goes silent",
    "module outputs stale",
)


def bench_system_fault(kind: str, secc_poll: float) -> tuple[float, float, float, float]:
    """(trip, zero current, contacts open, EV told) in seconds after the injection."""
    import asyncio
    import dataclasses

    from evse.aio.app import SeccOptions, build_station
    from evse.aio.secc_server import SeccServer
    from evse.protocol.iso20.timeouts import Timeouts
    from simulators.ev import get_scenario
    from simulators.ev.client import run_session
    from simulators.hw import PowerTrace, SimulatedHardware

    async def run() -> tuple[float, float, float, float]:
        trace = PowerTrace(sample_interval=0.0)
        hw = SimulatedHardware(can=f"virtual:bench-sys-{os.getpid()}-{random.random()}",
                               trace=trace).start()
        try:
            options = SeccOptions(address="127.0.0.1", hal=hw.hal_spec, port=0,
                                  allow_plain_tcp_iso20=True, poll_interval=secc_poll,
                                  allow_simulated_parts=True,
                                  hal_options={"sim": {"imd_measuring_time": 0.2}})
            station, config = build_station(options)
            config = dataclasses.replace(config, timeouts=Timeouts(close_after_session_stop=0.2))
            server = SeccServer(config, station, address="127.0.0.1", port=0,
                                poll_interval=secc_poll)
            await server.start()
            try:
                scenario = get_scenario("dc").replace(max_loops=400, loop_interval=0.02,
                                                      precharge_interval=0.01,
                                                      ongoing_interval=0.01)
                task = asyncio.create_task(
                    run_session(scenario, host="127.0.0.1", port=server.port))
                rack = hw.rack
                assert rack is not None
                end = clock() + 10.0
                while not rack.total_current > 90.0:
                    if clock() > end or task.done():
                        raise RuntimeError("the EV never charged")
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.1)
                sup = station.connectors[0].backend
                t0 = clock()
                if kind == "e-stop pressed on the MCU":
                    hw.press_emergency_stop()
                elif kind == "MCU goes silent":
                    hw.mcu_silent(True)
                elif kind == "module outputs stale":
                    hw.mute_outputs(True)
                elif kind == "over-current (EV limit lowered)":
                    sup.set_limits(420.0, 50.0, 50.0)  # type: ignore[attr-defined]
                else:
                    raise ValueError(kind)
                await asyncio.wait_for(task, 10.0)
                told = clock() - t0
                end = clock() + 2.0
                while hw.mcu.contactors_closed and clock() < end:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
                trips = sup.trips  # type: ignore[attr-defined]
                trip = trips[0].time - t0 if trips else float("nan")  # HAL clock = monotonic
                samples = [x for x in list(trace.samples) if x[0] >= t0]
                zero = next((t - t0 for t, a, _ in samples if abs(a) < 0.5), float("nan"))
                opened = next((t - t0 for t, _, c in samples if not c), float("nan"))
                return trip, zero, opened, told
            finally:
                await server.close()
        finally:
            hw.close()

    return asyncio.run(run())


# ---- report ------------------------------------------------------------------------------


def ms(x: float) -> str:
    return "-" if x != x else f"{x * 1000:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples (smoke run)")
    parser.add_argument(
        "--poll-period",
        type=float,
        default=0.01,
        help="supervisor poll period in the fault rows (s, default 0.01)",
    )
    parser.add_argument(
        "--secc-poll",
        type=float,
        default=0.025,
        help="SECC HAL poll period in the system-level rows (s, default 0.025 as evse secc)",
    )
    parser.add_argument("--no-system", action="store_true", help="skip the system-level rows")
    args = parser.parse_args(argv)
    logging.disable(logging.ERROR)  # the injected faults are logged as errors: keep the table clean
    n = 20 if args.quick else 300
    repeats = 1 if args.quick else 5

    print(
        f"HAL benchmark: Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs{' (--quick)' if args.quick else ''}"
    )
    print()
    rows: list[tuple[str, list[float]]] = [
        ("serial command -> ACK (pty, simulated MCU)", bench_serial(n)),
        ("CAN setpoint -> measurement (reads every 100 ms)", bench_can(max(5, n // 10), 0.1)),
        ("CAN setpoint -> measurement (reads every 10 ms)", bench_can(n // 2, 0.01)),
    ]
    header = f"{'latency':<50} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}"
    print(header)
    print("-" * len(header))
    for label, values in rows:
        print(
            f"{label:<50} {len(values):>5} {ms(statistics.median(values)):>9} "
            f"{ms(percentile(values, 99)):>9} {ms(max(values)):>9}"
        )
    print()

    header = (
        f"{'fault (supervisor, poll every ' + format(args.poll_period * 1000, '.0f') + ' ms)':<42}"
        f" {'n':>3} {'detect ms':>10} {'zero current ms':>16} {'contacts open ms':>17}"
    )
    print(header)
    print("-" * len(header))
    for kind in (
        "e-stop pressed on the MCU",
        "over-current (EV limit lowered)",
        "MCU goes silent",
        "one power module faults",
    ):
        results = [bench_fault(kind, args.poll_period) for _ in range(repeats)]
        cols = []
        for i in range(3):
            vals = [r[i] for r in results if r[i] == r[i]]
            cols.append(statistics.median(vals) if vals else float("nan"))
        print(f"{kind:<42} {repeats:>3} {ms(cols[0]):>10} {ms(cols[1]):>16} {ms(cols[2]):>17}")
    print()
    print(
        "median over the runs; '-' = did not happen (a single module fault derates, no trip)."
        " MCU silence is detected after mcu_timeout (0.5 s)."
    )
    if args.no_system:
        return 0
    print()
    header = (
        f"{'system: SECC + EV running (poll ' + format(args.secc_poll * 1000, '.0f') + ' ms)':<42}"
        f" {'n':>3} {'trip ms':>10} {'zero current ms':>16} {'contacts open ms':>17}"
        f" {'EV told ms':>11}"
    )
    print(header)
    print("-" * len(header))
    for kind in SYSTEM_FAULTS:
        results = [bench_system_fault(kind, args.secc_poll) for _ in range(repeats)]
        cols = []
        for i in range(4):
            vals = [r[i] for r in results if r[i] == r[i]]
            cols.append(statistics.median(vals) if vals else float("nan"))
        print(f"{kind:<42} {repeats:>3} {ms(cols[0]):>10} {ms(cols[1]):>16} {ms(cols[2]):>17}"
              f" {ms(cols[3]):>11}")
    print()
    print(
        "zero current / contacts open: the modules' physics (stepped every ~2 ms, stamped at"
        " the step's start: +-2 ms). The supervisor opens the contacts on a fresh zero reading"
        " (CAN reads every 100 ms) or after open_timeout (0.5 s) without one (stale outputs);"
        " the MCU opens them itself 50 ms after its e-stop button. Stale outputs trip after"
        " stale_after (1 s), MCU silence after mcu_timeout (0.5 s) from the last frame."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

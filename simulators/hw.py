"""Simulated charger hardware for `evse secc --hal serial:...,can:...` in another process.

    python -m simulators.hw --pty-link /tmp/evse-mcu --can "udp_multicast:[ff01::4556:5345]"
    evse sim-hw --pty-link /tmp/evse-mcu --can "udp_multicast:[ff01::4556:5345]"   # the same

runs, on the real clock, until SIGINT/SIGTERM:

- the simulated safety MCU (`simulators.mcu.SimulatedMcu`) on the master side of a pty;
  `--pty-link PATH` is a symlink to the slave, the port `evse secc` opens;
- the simulated bidirectional power modules (`hal.sim.can_modules.ModuleRack`) on a
  python-can bus another process can reach: python-can's `udp_multicast` on an IPv6
  interface-local group (ff01::/16: the kernel loops it back to local members and never
  puts it on a link). `--can none` leaves the modules out (then run the charger with
  `can:virtual+sim`, modules in its own process). python-can's `virtual` bus only reaches
  the same process: use it from Python (`SimulatedHardware(can="virtual:NAME")`) when the
  charger runs in the same process, as the system tests do.

The modules' DC output reaches their battery while the MCU's contacts are closed (the EV's
own contactors are taken as closed), so current flows only through the contactors the
charger commands. `PowerTrace` watches that node: the largest current either way, samples,
and the current the contacts were carrying each time they opened (`breaks`): a safe
shutdown opens them at ~0 A.

Fault injection (methods, or typed on stdin while the command runs; `help` lists them):
emergency stop pressed / released, MCU silent / talking again, CRC errors and garbage on
the serial line, a welded contactor (and its repair), the MCU's STATUS frames stopping
(everything else still sent), an unsolicited HELLO_REPLY announcing another protocol
version, a power module dropping out (and back), module outputs going stale.

The car's side of the control pilot (IEC 61851-1), on the same stdin: `plug` (B: plugged
in, the charger answers with 5 % and SLAC), `ready` (C: the car asks for energy),
`ventilation` (D), `pause` (back to B), `unplug` (A), `diode` (a shorted diode: the MCU
reads E). `--ev-pilot A` starts without a car (default C: plugged in and ready, as before).
The MCU reports the reading and generates the duty the charger asks for
(docs/serial_protocol.md), so pilot -> SLAC (veth) -> SDP -> session -> unplug runs across
processes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hal.backends.serial.protocol import PilotCode
from simulators.battery import EvBattery
from simulators.can_module import ModuleRack, RackThread
from simulators.mcu import McuThread, PtyPair, SimulatedMcu

log = logging.getLogger(__name__)

DEFAULT_PTY_LINK = "/tmp/evse-mcu"
DEFAULT_CAN = "udp_multicast:[ff01::4556:5345]:43113"  # interface-local: never leaves the host


@dataclass(frozen=True, slots=True)
class ContactorBreak:
    """The contacts opened at `time` while the modules carried `current` (A, signed)."""

    time: float
    current: float


class PowerTrace:
    """What flowed through the contactors (updated from the rack's physics step)."""

    def __init__(self, sample_interval: float = 0.05, maxlen: int = 20_000) -> None:
        self.sample_interval = sample_interval
        self.samples: deque[tuple[float, float, bool]] = deque(maxlen=maxlen)  # t, A, closed
        self.breaks: list[ContactorBreak] = []
        self.max_current = 0.0
        self.min_current = 0.0
        self._closed = False
        self._last_sample = -1e9
        self.lock = threading.Lock()

    def observe(self, now: float, current: float, closed: bool) -> None:
        with self.lock:
            if self._closed and not closed:
                self.breaks.append(ContactorBreak(now, current))
            self._closed = closed
            if closed:
                self.max_current = max(self.max_current, current)
                self.min_current = min(self.min_current, current)
            if now - self._last_sample >= self.sample_interval:
                self._last_sample = now
                self.samples.append((now, current, closed))

    def reset(self) -> None:
        with self.lock:
            self.samples.clear()
            self.breaks.clear()
            self.max_current = self.min_current = 0.0

    def breaks_under_load(self, zero_current: float = 1.0) -> list[ContactorBreak]:
        """Openings with more than `zero_current` flowing (each one a fault of the host)."""
        with self.lock:
            return [b for b in self.breaks if abs(b.current) > zero_current]


def parse_can_target(target: str) -> dict[str, Any]:
    """The can backend's target syntax ("virtual:NAME", "udp_multicast:[GROUP]:PORT", ...)
    -> keyword options of `can.Bus` (interface, channel, port)."""
    from hal.registry import target_options

    opts = target_options("can", target)
    if opts.get("simulated_modules"):
        raise ValueError("virtual+sim is the charger-side form; give virtual:NAME here")
    out: dict[str, Any] = {"interface": opts["interface"], "channel": opts.get("channel")}
    out.update(opts.get("bus_options", {}))
    if out["interface"] == "virtual" and out["channel"] is None:
        from hal.backends.can.backend import DEFAULT_VIRTUAL_CHANNEL

        out["channel"] = DEFAULT_VIRTUAL_CHANNEL
    return out


class SimulatedHardware:
    """The simulated MCU on a pty and the simulated power modules on a CAN bus, each run
    by a thread on the real clock once `start()`ed (or as a context manager).

    `can`: the bus in the can backend's target syntax, or None for no modules.
    `hal_spec` is the `--hal` value that reaches this hardware.
    """

    def __init__(
        self,
        *,
        pty_link: str | Path | None = None,
        can: str | None = "virtual:evse-can",
        module_addresses: Sequence[int] = (0, 1),
        soc: float = 0.5,
        mcu_options: dict[str, Any] | None = None,
        rack_options: dict[str, Any] | None = None,
        trace: PowerTrace | None = None,
        ev_pilot: PilotCode = PilotCode.C,
    ) -> None:
        self.pty = PtyPair()
        self.pty_link = Path(pty_link) if pty_link is not None else None
        self.mcu = SimulatedMcu(self.pty.master_fd, **(mcu_options or {}))
        self.mcu.ev_pilot = ev_pilot  # default C: an EV is plugged in and ready
        self.ev_contactor_closed = True
        self.trace = trace if trace is not None else PowerTrace()
        self.can_target = can
        self.module_addresses = tuple(module_addresses)
        self.bus: Any = None
        self.rack: ModuleRack | None = None
        self._threads: list[McuThread | RackThread] = []
        try:
            if self.pty_link is not None:
                _symlink(self.pty.port, self.pty_link)
            if can is not None:
                import can as python_can

                self.bus = python_can.Bus(**parse_can_target(can))
                self.rack = ModuleRack(
                    self.bus,
                    self.module_addresses,
                    battery=EvBattery(soc=soc),
                    connected=self._connected,
                    **(rack_options or {}),
                )
        except BaseException:
            self.close()
            raise

    # ---- wiring --------------------------------------------------------------------------

    @property
    def serial_port(self) -> str:
        return str(self.pty_link) if self.pty_link is not None else self.pty.port

    @property
    def hal_spec(self) -> str:
        """The `evse secc --hal` value for this hardware. This bench has no isolation
        monitor or meter: `sim` names them simulated, explicitly, and the charger needs
        --allow-simulated-parts to run a real board and power stage beside them."""
        if self.can_target is None:
            return f"serial:{self.serial_port},can:virtual+sim,sim"
        return f"serial:{self.serial_port},can:{self.can_target},sim"

    def _connected(self) -> bool:
        closed = self.ev_contactor_closed and self.mcu.contactors_closed
        rack = self.rack
        if rack is not None:
            self.trace.observe(rack.now or 0.0, rack.total_current, closed)
        return closed

    # ---- life cycle ----------------------------------------------------------------------

    def start(self) -> SimulatedHardware:
        self._threads.append(McuThread(self.mcu).start())
        if self.rack is not None:
            self._threads.append(RackThread(self.rack).start())
        return self

    def close(self) -> None:
        for thread in reversed(self._threads):
            thread.stop()
        self._threads.clear()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                self.bus.shutdown()
            self.bus = None
        if self.pty_link is not None:
            with contextlib.suppress(OSError):
                if self.pty_link.is_symlink() and os.readlink(self.pty_link) == self.pty.port:
                    self.pty_link.unlink()
        self.pty.close()

    def __enter__(self) -> SimulatedHardware:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- fault injection -----------------------------------------------------------------

    def press_emergency_stop(self) -> None:
        self.mcu.press_emergency_stop()

    # ---- the car's side of the pilot -------------------------------------------------------

    def set_ev_pilot(self, state: PilotCode) -> None:
        """What the car does to the pilot (A-E; F is the charger's own, duty 0 %)."""
        if state is PilotCode.F:
            raise ValueError("state F is driven by the charger, not by the car")
        self.mcu.ev_pilot = state

    def plug(self) -> None:
        self.set_ev_pilot(PilotCode.B)

    def ready(self) -> None:
        self.set_ev_pilot(PilotCode.C)

    def unplug(self) -> None:
        self.set_ev_pilot(PilotCode.A)

    def diode_fault(self) -> None:
        """The car's pilot diode is shorted: no negative half-wave, read as E (fault)."""
        self.set_ev_pilot(PilotCode.E)

    def release_emergency_stop(self) -> None:
        self.mcu.release_emergency_stop()

    def mcu_silent(self, silent: bool = True) -> None:
        """The MCU stops (or resumes) transmitting; it still hears the host."""
        with self.mcu.lock:
            self.mcu.silent = silent

    def pause_status(self, paused: bool = True) -> None:
        """The MCU stops (or resumes) sending STATUS; ACKs and reports still go out."""
        with self.mcu.lock:
            self.mcu.status_paused = paused

    def announce_version(self, major: int, minor: int = 0) -> None:
        """An unsolicited HELLO_REPLY with protocol major.minor (the MCU's state is kept)."""
        self.mcu.send_hello_reply((major, minor))

    def corrupt_crc(self, frames: int = 3) -> None:
        self.mcu.corrupt_crc(frames)

    def send_garbage(self) -> None:
        self.mcu.send_garbage()

    def weld_contactor(self) -> None:
        self.mcu.weld_contactor()

    def repair_contactor(self) -> None:
        self.mcu.repair_contactor()

    def drop_module(self, address: int) -> None:
        self._need_rack().drop_out(address)

    def restore_module(self, address: int) -> None:
        self._need_rack().restore(address)

    def mute_outputs(self, muted: bool = True) -> None:
        rack = self._need_rack()
        with rack.lock:
            rack.mute_outputs = muted

    def _need_rack(self) -> ModuleRack:
        if self.rack is None:
            raise RuntimeError("no simulated modules here (--can none)")
        return self.rack

    def status(self) -> str:
        mcu = self.mcu
        parts = [
            f"MCU {mcu.state.name} contactors {'closed' if mcu.contactors_closed else 'open'}"
            f"{' (welded)' if mcu.welded else ''} e-stop "
            f"{'LATCHED' if mcu.estop_latched else 'clear'}"
            f"{' (pressed)' if mcu.estop_button else ''}{' SILENT' if mcu.silent else ''}",
            f"pilot {mcu.pilot_measured.name} (car {mcu.ev_pilot.name}) duty "
            f"{mcu.pwm_output / 10:g} %",
        ]
        rack = self.rack
        if rack is not None:
            with rack.lock:
                mods = ", ".join(
                    f"{a}:{'DROPPED' if m.dropped else 'on' if m.output_enabled else 'off'}"
                    f" {m.current:+.1f} A"
                    for a, m in rack.modules.items()
                )
                parts.append(
                    f"DC {rack.voltage:.1f} V {rack.total_current:+.1f} A "
                    f"SOC {rack.battery.soc * 100:.1f}% modules [{mods}]"
                    f"{' OUTPUTS MUTED' if rack.mute_outputs else ''}"
                )
        return "; ".join(parts)


def _symlink(target: str, link: Path) -> None:
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a symlink: not replacing it")
    link.symlink_to(target)


# ---- the command -------------------------------------------------------------------------

COMMANDS: dict[str, str] = {
    "estop": "press the emergency stop button on the MCU",
    "release": "release the emergency stop button",
    "silent": "the MCU stops transmitting",
    "talk": "the MCU transmits again",
    "crc [N]": "corrupt the CRC of the next N frames (default 3)",
    "garbage": "a burst of garbage on the serial line",
    "nostatus": "the MCU stops sending STATUS (ACKs and reports still go out)",
    "status-on": "the MCU sends STATUS again",
    "hello MAJOR": "an unsolicited HELLO_REPLY announcing protocol MAJOR.0",
    "weld": "weld the contactor (at once if closed, else at the next closing)",
    "repair": "unweld the contactor",
    "drop ADDR": "power module ADDR drops out (silent, output off)",
    "restore ADDR": "power module ADDR comes back",
    "stale": "modules stop answering READ_OUTPUT (stale measurements)",
    "fresh": "modules answer READ_OUTPUT again",
    "plug": "the car is plugged in (pilot B)",
    "ready": "the car asks for energy (pilot C)",
    "ventilation": "the car asks for energy with ventilation (pilot D)",
    "pause": "the car pauses or stops (back to B)",
    "unplug": "the car is unplugged (pilot A)",
    "diode": "the car's pilot diode is shorted (read as E, a fault)",
    "status": "print the state",
}


def run_command(hw: SimulatedHardware, line: str) -> str:
    """Carry out one stdin command; returns what to print."""
    words = line.split()
    if not words:
        return ""
    cmd, args = words[0].lower(), words[1:]
    actions: dict[str, Callable[[], None]] = {
        "estop": hw.press_emergency_stop,
        "release": hw.release_emergency_stop,
        "silent": lambda: hw.mcu_silent(True),
        "talk": lambda: hw.mcu_silent(False),
        "crc": lambda: hw.corrupt_crc(int(args[0]) if args else 3),
        "garbage": hw.send_garbage,
        "nostatus": lambda: hw.pause_status(True),
        "status-on": lambda: hw.pause_status(False),
        "hello": lambda: hw.announce_version(int(args[0])),
        "weld": hw.weld_contactor,
        "repair": hw.repair_contactor,
        "drop": lambda: hw.drop_module(int(args[0], 0)),
        "restore": lambda: hw.restore_module(int(args[0], 0)),
        "stale": lambda: hw.mute_outputs(True),
        "fresh": lambda: hw.mute_outputs(False),
        "plug": hw.plug,
        "ready": hw.ready,
        "ventilation": lambda: hw.set_ev_pilot(PilotCode.D),
        "pause": hw.plug,
        "unplug": hw.unplug,
        "diode": hw.diode_fault,
    }
    if cmd == "status":
        return hw.status()
    if cmd not in actions:
        return "commands: " + "; ".join(f"{k}: {v}" for k, v in COMMANDS.items())
    try:
        actions[cmd]()
    except (IndexError, ValueError, KeyError, RuntimeError) as exc:
        return f"{cmd}: {exc!r}"
    return f"{cmd}: done; {hw.status()}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evse sim-hw",
        description="Simulated safety MCU (on a pty) and bidirectional CAN power modules "
        "for `evse secc --hal serial:...,can:...` in another process.",
    )
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pty-link", default=DEFAULT_PTY_LINK, metavar="PATH",
                   help=f"symlink to the MCU's pty (default {DEFAULT_PTY_LINK})")
    p.add_argument("--can", default=DEFAULT_CAN, metavar="TARGET",
                   help="bus of the simulated modules, in the can backend's target syntax "
                   f"(default {DEFAULT_CAN}); 'none': no modules (the charger then uses "
                   "can:virtual+sim)")
    p.add_argument("--modules", default="0,1",
                   help="module addresses, comma separated (default 0,1; the charger's "
                   "module_addresses option must match)")
    p.add_argument("--soc", type=float, default=50.0,
                   help="SOC in percent of the battery behind the modules (default 50)")
    p.add_argument("--host-timeout", type=float, default=0.5,
                   help="MCU: host silence before its safe state (s, default 0.5)")
    p.add_argument("--status-interval", type=float, default=0.1,
                   help="MCU: STATUS period (s, default 0.1)")
    p.add_argument("--ev-pilot", choices=("A", "B", "C"), default="C",
                   help="the car's pilot at start: A no car, B plugged, C plugged and ready "
                   "(default C); then plug/ready/unplug/diode on stdin")
    p.add_argument("--no-stdin", action="store_true",
                   help="do not read fault-injection commands from stdin")


def main(argv: Sequence[str] | None = None, ns: argparse.Namespace | None = None) -> int:
    if ns is None:
        ns = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    can_target = None if ns.can.lower() == "none" else ns.can
    try:
        addresses = [int(a, 0) for a in ns.modules.split(",") if a.strip()]
        hw = SimulatedHardware(
            pty_link=ns.pty_link,
            can=can_target,
            module_addresses=addresses,
            soc=ns.soc / 100.0,
            mcu_options={"host_timeout": ns.host_timeout, "status_interval": ns.status_interval},
            ev_pilot=PilotCode[ns.ev_pilot],
        )
    except Exception as exc:  # a bad option, no multicast here, an occupied path
        print(f"evse sim-hw: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with hw:
        modules = ",".join(str(a) for a in addresses)
        where = "none (use can:virtual+sim in the charger)" if can_target is None else (
            f"modules {modules} on {can_target}")
        print(f"evse sim-hw: MCU on {hw.pty.port} (link {hw.serial_port}); CAN: {where}",
              flush=True)
        print(f"evse sim-hw: run the charger with --hal '{hw.hal_spec}' "
              "--allow-simulated-parts (isolation monitor and meter simulated)", flush=True)
        if not ns.no_stdin and sys.stdin is not None and not sys.stdin.closed:
            reader = threading.Thread(target=_read_commands, args=(hw, stop), daemon=True)
            reader.start()
        while not stop.wait(0.2):
            pass
    print("evse sim-hw: stopped", flush=True)
    return 0


def _read_commands(hw: SimulatedHardware, stop: threading.Event) -> None:
    for line in sys.stdin:
        if stop.is_set():
            return
        out = run_command(hw, line)
        if out:
            print(out, flush=True)
    # EOF on stdin: keep running (a background job has no terminal)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

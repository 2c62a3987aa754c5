"""An example aggregator: makes a fleet of stations follow a grid power request, talking
only the documented MQTT API (docs/mqtt_api.md).

    python -m simulators.fleet.aggregator --broker 127.0.0.1:1883 --speedup 10 \\
        --profile "-200:30@0.35,150:30@0.05" --duration 400 --json out.json

It subscribes to every station's `state` and `events`, and every `--interval` seconds it
splits the request of the moment among the cars in an ISO 15118-20 Dynamic BPT session
(simulators.fleet.dispatch: headroom, departure needs, marginal wear), sending a `setpoint`
to each car whose share changed. A car that arrives or leaves triggers a re-dispatch at
once. It records, per interval, the requested and the measured fleet power (the sum of the
`power_kw` the stations publish) and, per car session, the energy bought and sold at the
profile's prices and the wear of the discharged energy; `report()` gives the table + JSON.

The profile is in simulated minutes (the stations' HAL runs `--speedup` times faster):
"KW:MINUTES[@PRICE]" comma separated; negative kW = the fleet delivers (discharges).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiomqtt

from simulators.fleet.dispatch import CarView, fleet_range, marginal_wear, split

log = logging.getLogger(__name__)

STEERABLE = frozenset({"charging", "discharging", "suspended"})
DEFAULT_PROFILE = "-200:30@0.35,150:30@0.05"
DEFAULT_PRICE = 0.25  # per kWh outside the profile's priced segments
# A car winds down this many dispatch intervals before its departure (only what it still
# needs), so that the others have taken over its share when it leaves.
LEAD_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class Segment:
    start_min: float
    end_min: float
    kw: float
    price: float


def parse_profile(text: str, default_price: float = DEFAULT_PRICE) -> list[Segment]:
    """"-200:30@0.35,150:30@0.05" -> deliver 200 kW for 30 min at 0.35/kWh, then absorb
    150 kW for 30 min at 0.05/kWh (simulated minutes)."""
    out: list[Segment] = []
    t = 0.0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        head, _, price = part.partition("@")
        kw, _, minutes = head.partition(":")
        try:
            seg = Segment(t, t + float(minutes), float(kw),
                          float(price) if price else default_price)
        except ValueError:
            raise ValueError(f"bad profile segment {part!r} (KW:MINUTES[@PRICE])") from None
        if not (seg.end_min > seg.start_min and math.isfinite(seg.kw)):
            raise ValueError(f"bad profile segment {part!r}: minutes must be > 0")
        out.append(seg)
        t = seg.end_min
    if not out:
        raise ValueError("empty profile")
    return out


def segment_at(profile: Sequence[Segment], minute: float) -> Segment | None:
    for s in profile:
        if s.start_min <= minute < s.end_min:
            return s
    return None


@dataclass
class Sample:
    t_s: float  # real seconds since the aggregator started
    minute: float  # simulated minutes into the profile
    request_kw: float
    feasible_kw: float  # the request clipped to what the fleet could do then
    actual_kw: float
    cars: int

    @property
    def error(self) -> float | None:
        """|actual - request| / |request| (None for a zero request)."""
        if abs(self.request_kw) < 1e-9:
            return None
        return abs(self.actual_kw - self.request_kw) / abs(self.request_kw)


@dataclass
class Ledger:
    """One car session, as the aggregator accounts for it."""

    session_id: str
    evcc_id: str
    owner: str
    chemistry: str
    station: str
    wear_per_kwh: float
    energy_in_kwh: float = 0.0
    energy_out_kwh: float = 0.0
    paid: float = 0.0  # for the energy charged
    earned: float = 0.0  # for the energy discharged
    wear: float = 0.0
    last_in: float | None = None
    last_out: float | None = None
    departure_ts: float | None = None
    target_soc: float | None = None
    soc: float | None = None  # latest
    ended: bool = False

    @property
    def net(self) -> float:
        return self.earned - self.paid - self.wear


@dataclass
class Car:
    """The latest picture of one connector (from its retained `state`)."""

    key: str
    state: dict[str, Any] = field(default_factory=dict)
    ledger: Ledger | None = None
    sent_kw: float | None = None
    sent_at: float = -math.inf


class Aggregator:
    def __init__(self, host: str, port: int, *, speedup: float, profile: Sequence[Segment],
                 interval_s: float = 1.0, settle_s: float = 60.0, prefix: str = "evse/v1",
                 cars: Mapping[str, Mapping[str, Any]] | None = None,
                 wear: Callable[[str | None], float] = marginal_wear,
                 clock: Callable[[], float] = time.time) -> None:
        self.host, self.port = host, port
        self.speedup = speedup
        self.profile = list(profile)
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.prefix = prefix
        self.contracts = dict(cars or {})  # evcc_id -> {"owner", "chemistry", ...}
        self.wear = wear
        self.clock = clock
        self.cars: dict[str, Car] = {}
        self.samples: list[Sample] = []
        self.ledgers: list[Ledger] = []
        self.setpoints_sent = 0
        self.rejected: dict[str, int] = {}
        self.t0 = 0.0
        self._evcc_of: dict[str, str] = {}  # session id -> EVCCID (session_started)
        self._ids = itertools.count()
        self._changed = asyncio.Event()

    @property
    def duration_min(self) -> float:
        return self.profile[-1].end_min

    def minute(self, now: float) -> float:
        return (now - self.t0) * self.speedup / 60.0

    # -- MQTT ----------------------------------------------------------------------------------

    async def run(self, *, duration_s: float | None = None,
                  started: asyncio.Event | None = None) -> None:
        """Follow the profile (or stop after `duration_s` real seconds)."""
        duration = duration_s if duration_s is not None else self.duration_min * 60.0 / (
            self.speedup)
        # its own logger: paho warns about every queued publish beyond a few, and a fleet's
        # dispatch queues dozens on purpose
        quiet = logging.getLogger(f"{__name__}.mqtt")
        quiet.setLevel(logging.ERROR)
        client = aiomqtt.Client(self.host, self.port, identifier=f"aggregator-{id(self)}",
                                timeout=10, max_inflight_messages=1000, logger=quiet)
        async with client:
            for what in ("+/+/state", "+/+/events", "+/+/reply/setpoint"):
                await client.subscribe(f"{self.prefix}/{what}", qos=1)
            self.t0 = self.clock()
            pump = asyncio.create_task(self._pump(client))
            if started is not None:
                started.set()
            try:
                await self._control(client, duration)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pump

    async def _pump(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            try:
                body = json.loads(m.payload if isinstance(m.payload, bytes | str) else b"")
            except ValueError:
                continue
            parts = m.topic.value[len(self.prefix) + 1:].split("/")
            if len(parts) < 3 or not isinstance(body, dict):
                continue
            key = f"{parts[0]}/{parts[1]}"
            if parts[2] == "state":
                self._on_state(key, parts[0], body)
            elif parts[2] == "events":
                self._on_event(key, parts[0], body)
            elif parts[2] == "reply" and not body.get("ok"):
                error = str(body.get("error"))
                self.rejected[error] = self.rejected.get(error, 0) + 1
                log.info("%s: setpoint rejected: %s", key, error)

    def _on_state(self, key: str, station: str, body: dict[str, Any]) -> None:
        car = self.cars.setdefault(key, Car(key))
        old = car.state
        car.state = body
        if steerable(old) != steerable(body):
            self._changed.set()  # a car came or left: re-dispatch now
        elif (not steerable(body) and body.get("session_id") is not None and abs(
                (body.get("power_kw") or 0.0) - (old.get("power_kw") or 0.0)) > 0.5):
            self._changed.set()  # a car we cannot steer (yet) moved: the others make up
        sid = body.get("session_id")
        if sid is not None and (car.ledger is None or car.ledger.session_id != sid):
            self._open(car, station, sid, self._evcc_of.get(sid))
        led = car.ledger
        if led is not None and not led.ended and led.session_id == sid:
            self._account(led, body)

    def _on_event(self, key: str, station: str, body: dict[str, Any]) -> None:
        car = self.cars.setdefault(key, Car(key))
        kind = body.get("event")
        sid = body.get("session_id")
        if kind == "session_started" and isinstance(sid, str):
            evcc_id = str(body.get("evcc_id") or "")
            self._evcc_of[sid] = evcc_id
            if car.ledger is not None and car.ledger.session_id == sid:
                self._name(car.ledger, evcc_id)  # the state came first
            else:
                self._open(car, station, sid, evcc_id)
            car.sent_kw = None
            self._changed.set()
        elif kind == "session_stopped":
            led = car.ledger
            if led is not None and led.session_id == sid and not led.ended:
                self._account(led, body)  # the session's final metered energy
                led.ended = True
            car.sent_kw = None
            self._changed.set()

    def _open(self, car: Car, station: str, sid: str, evcc_id: str | None) -> Ledger:
        if car.ledger is not None:
            car.ledger.ended = True
        led = Ledger(session_id=sid, evcc_id="", owner="", chemistry="?", station=station,
                     wear_per_kwh=self.wear(None))
        self._name(led, evcc_id or f"?{car.key}")
        car.ledger = led
        self.ledgers.append(led)
        return led

    def _name(self, led: Ledger, evcc_id: str) -> None:
        contract = self.contracts.get(evcc_id, {})
        led.evcc_id = evcc_id
        led.owner = str(contract.get("owner", evcc_id))
        led.chemistry = str(contract.get("chemistry", "?"))
        led.wear_per_kwh = self.wear(led.chemistry)

    def _price(self, now: float) -> float:
        seg = segment_at(self.profile, self.minute(now))
        return seg.price if seg is not None else DEFAULT_PRICE

    def _account(self, led: Ledger, body: dict[str, Any]) -> None:
        e_in = body.get("energy_in_kwh")
        e_out = body.get("energy_out_kwh")
        if not isinstance(e_in, int | float) or not isinstance(e_out, int | float):
            return
        price = self._price(self.clock())
        if led.last_in is not None and led.last_out is not None:
            d_in = max(0.0, e_in - led.last_in)
            d_out = max(0.0, e_out - led.last_out)
            led.energy_in_kwh += d_in
            led.energy_out_kwh += d_out
            led.paid += d_in * price
            led.earned += d_out * price
            led.wear += d_out * led.wear_per_kwh
        else:  # energy of this session before we saw it: counted, priced at the default
            led.energy_in_kwh += e_in
            led.energy_out_kwh += e_out
            led.paid += e_in * DEFAULT_PRICE
            led.earned += e_out * DEFAULT_PRICE
            led.wear += e_out * led.wear_per_kwh
        led.last_in, led.last_out = e_in, e_out
        if body.get("soc_percent") is not None:
            led.soc = body["soc_percent"]
        ev = body.get("ev") or {}
        if ev.get("departure_ts") is not None:
            led.departure_ts = ev["departure_ts"]
        if ev.get("target_soc_percent") is not None:
            led.target_soc = ev["target_soc_percent"]

    # -- dispatch ------------------------------------------------------------------------------

    def views(self, now: float) -> tuple[list[CarView], float]:
        """The steerable cars, and the power of the connectors we cannot steer (kW)."""
        views: list[CarView] = []
        fixed = 0.0
        for car in self.cars.values():
            s = car.state
            power = s.get("power_kw") or 0.0
            ev = s.get("ev") or {}
            lim = s.get("limits") or {}
            if not steerable(s):
                fixed += power if s.get("session_id") is not None else 0.0
                continue
            soc, cap = float(s["soc_percent"]), float(ev["capacity_kwh"])
            departure = ev.get("departure_ts")
            left_h = (max(0.0, departure - now) * self.speedup / 3600.0
                      if departure is not None else 24.0)
            target = ev.get("target_soc_percent")
            chemistry = car.ledger.chemistry if car.ledger is not None else None
            views.append(CarView(
                key=car.key, soc=soc, capacity_kwh=cap,
                target_soc=float(target) if target is not None else soc,
                minimum_soc=float(ev.get("minimum_soc_percent") or 0.0),
                time_left_h=left_h,
                max_charge_kw=_min(lim.get("max_charge_power_kw"), ev.get("max_charge_power_kw")),
                max_discharge_kw=_min(lim.get("max_discharge_power_kw"),
                                      ev.get("max_discharge_power_kw")),
                wear_per_kwh=self.wear(chemistry),
                energy_needed_kwh=ev.get("energy_to_target_kwh")))
        return views, fixed

    def fleet_power(self) -> float:
        return sum((c.state.get("power_kw") or 0.0) for c in self.cars.values()
                   if c.state.get("session_id") is not None)

    async def _control(self, client: aiomqtt.Client, duration: float) -> None:
        dt_h = self.interval_s * self.speedup / 3600.0
        lead_h = LEAD_INTERVALS * dt_h
        next_tick = self.clock()
        end = self.t0 + duration
        while True:
            now = self.clock()
            if now >= end:
                break
            seg = segment_at(self.profile, self.minute(now))
            request = seg.kw if seg is not None else 0.0
            views, fixed = self.views(now)
            shares = split(views, request - fixed, dt_h, lead_h=lead_h)
            lo, hi = fleet_range(views, dt_h, lead_h=lead_h) if views else (0.0, 0.0)
            if now >= next_tick:  # one sample per interval
                self.samples.append(Sample(
                    t_s=now - self.t0, minute=self.minute(now), request_kw=request,
                    feasible_kw=min(hi + fixed, max(lo + fixed, request)),
                    actual_kw=self.fleet_power(), cars=len(views)))
                next_tick += self.interval_s
            await self._send(client, shares, now)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, min(next_tick, end) - self.clock())):
                    await self._changed.wait()
            await asyncio.sleep(0.1)  # coalesce a burst of arrivals into one dispatch

    async def _send(self, client: aiomqtt.Client, shares: Mapping[str, float],
                    now: float) -> None:
        sends = []
        for key, kw in shares.items():
            car = self.cars[key]
            lim = car.state.get("limits") or {}
            kw = round(min(lim.get("max_charge_power_kw") or 0.0,
                           max(-(lim.get("max_discharge_power_kw") or 0.0), kw)), 2)
            if (car.sent_kw is not None and abs(kw - car.sent_kw) < 0.05
                    and now - car.sent_at < 10.0):
                continue
            car.sent_kw, car.sent_at = kw, now
            body = json.dumps({"request_id": f"a{next(self._ids)}", "power_kw": kw})
            sends.append(client.publish(f"{self.prefix}/{key}/cmd/setpoint", body, qos=1))
        self.setpoints_sent += len(sends)
        for i in range(0, len(sends), 25):  # bounded: the client queues no more than this
            await asyncio.gather(*sends[i:i + 25])

    # -- the report ----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        after = [s for s in self.samples if s.t_s >= self.settle_s and s.error is not None]
        errors = sorted(e for s in after if (e := s.error) is not None)
        within = sum(1 for e in errors if e <= 0.05)
        feasible_err = [abs(s.actual_kw - s.feasible_kw) / abs(s.request_kw) for s in after]
        return {
            "speedup": self.speedup, "interval_s": self.interval_s, "settle_s": self.settle_s,
            "profile": [asdict(s) for s in self.profile],
            "tracking": {
                "intervals_after_settle": len(errors),
                "within_5_percent": within,
                "share_within_5_percent": within / len(errors) if errors else None,
                "mean_error": sum(errors) / len(errors) if errors else None,
                "p95_error": errors[min(len(errors) - 1, int(0.95 * len(errors)))]
                if errors else None,
                "max_error": errors[-1] if errors else None,
                "mean_error_vs_feasible": (sum(feasible_err) / len(feasible_err)
                                           if feasible_err else None),
            },
            "setpoints_sent": self.setpoints_sent, "setpoints_rejected": self.rejected,
            "samples": [asdict(s) | {"error": s.error} for s in self.samples],
            "owners": [{k: v for k, v in asdict(led).items()
                        if k not in ("last_in", "last_out")} | {"net": led.net}
                       for led in self.ledgers],
        }


def steerable(state: Mapping[str, Any]) -> bool:
    """A connector the aggregator can dispatch: a Dynamic session in the charge loop whose
    EV told its SOC and capacity, and no grid outage (then the station runs V2H itself)."""
    ev = state.get("ev") or {}
    return (state.get("session_state") in STEERABLE and state.get("control_mode") == "Dynamic"
            and state.get("soc_percent") is not None and bool(ev.get("capacity_kwh"))
            and not state.get("grid_outage"))


def _min(*values: Any) -> float:
    nums = [float(v) for v in values if isinstance(v, int | float)]
    return max(0.0, min(nums)) if nums else 0.0


def print_report(report: Mapping[str, Any], out: TextIO) -> None:
    t = report["tracking"]
    print("\nFleet tracking (per interval of "
          f"{report['interval_s']:g} s real; after the first {report['settle_s']:g} s)", file=out)
    print(f"  {'t/s':>6} {'sim min':>7} {'request':>8} {'actual':>8} {'error':>7} {'cars':>5}",
          file=out)
    samples = report["samples"]
    step = max(1, len(samples) // 40)
    for s in samples[::step]:
        err = "-" if s["error"] is None else f"{100 * s['error']:.1f}%"
        print(f"  {s['t_s']:6.1f} {s['minute']:7.1f} {s['request_kw']:8.1f} "
              f"{s['actual_kw']:8.1f} {err:>7} {s['cars']:5d}", file=out)

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f} %"

    print(f"  intervals after settle: {t['intervals_after_settle']}, within 5 %: "
          f"{t['within_5_percent']} ({pct(t['share_within_5_percent'])}); error mean "
          f"{pct(t['mean_error'])}, p95 {pct(t['p95_error'])}, max {pct(t['max_error'])}",
          file=out)
    print(f"  setpoints sent {report['setpoints_sent']}, rejected "
          f"{sum(report['setpoints_rejected'].values())}", file=out)
    owners = report["owners"]
    print(f"\nOwners ({len(owners)} car sessions; money per kWh at the profile's prices)",
          file=out)
    print(f"  {'owner':<14} {'chem':<4} {'kWh in':>7} {'kWh out':>7} {'paid':>7} {'earned':>7} "
          f"{'wear':>6} {'net':>7} {'SOC':>5} {'target':>6}", file=out)
    for o in owners:
        soc = "-" if o["soc"] is None else f"{o['soc']:.0f}"
        target = "-" if o["target_soc"] is None else f"{o['target_soc']:.0f}"
        print(f"  {o['owner']:<14} {o['chemistry']:<4} {o['energy_in_kwh']:7.2f} "
              f"{o['energy_out_kwh']:7.2f} {o['paid']:7.3f} {o['earned']:7.3f} "
              f"{o['wear']:6.3f} {o['net']:7.3f} {soc:>5} {target:>6}", file=out)
    out.flush()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", required=True, metavar="HOST:PORT")
    p.add_argument("--speedup", type=float, default=10.0,
                   help="the fleet's HAL speedup (simulated seconds per real second)")
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help=f"KW:MINUTES[@PRICE],... in simulated minutes (default {DEFAULT_PROFILE}"
                   "); negative kW: the fleet delivers")
    p.add_argument("--interval", type=float, default=1.0, help="dispatch interval, real s")
    p.add_argument("--settle", type=float, default=60.0,
                   help="real seconds not counted in the tracking figures (default 60)")
    p.add_argument("--duration", type=float, help="real seconds (default: the profile)")
    p.add_argument("--cars", type=Path, help="owner contracts: the fleet manifest JSON "
                   "(evse fleet-sim --manifest)")
    p.add_argument("--json", type=Path, help="write the report as JSON here")


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: HOST:PORT expected")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.fleet.aggregator",
                                description=__doc__.split("\n\n")[0])
    add_arguments(p)
    ns = p.parse_args(argv)
    host, port = host_port(ns.broker)
    contracts = json.loads(ns.cars.read_text())["cars"] if ns.cars else {}
    agg = Aggregator(host, port, speedup=ns.speedup, profile=parse_profile(ns.profile),
                     interval_s=ns.interval, settle_s=ns.settle, cars=contracts)
    asyncio.run(agg.run(duration_s=ns.duration))
    report = agg.report()
    print_report(report, sys.stdout)
    if ns.json is not None:
        ns.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

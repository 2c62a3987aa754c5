"""A HAL backend composed from named parts, each assigned explicitly.

An integrator who has one real part (say a meter) implements only that part's ABC and
composes the rest::

    backend = hal.compose(
        board={"backend": "serial", "port": "/dev/ttymxc2"},
        power_supply={"backend": "can", "interface": "socketcan", "channel": "can0"},
        isolation_monitor={"backend": "modbus-imd", "transport": "rtu", "port": "/dev/ttyS3"},
        meter=MyMeter(),
    )

Every part is required: a missing one is an error naming it, and nothing is filled in with a
simulation. A part is given as

- the part object itself (a `Board`, `PowerSupplyDC`, `IsolationMonitor` or `Meter`); if it
  has `poll(now)`, `close()` or `acknowledge_faults(now)` the composite calls them;
- a device (a `HalBackend`) that provides it, e.g. a `SerialBackend`: the composite polls,
  acknowledges and closes each device once, whatever number of parts it gives;
- a registry name ("sim") or a table {"backend": name, **options}: the backend is built
  through `hal.registry`. Parts naming the same backend share one instance, built with the
  union of their options (so `sim` for the isolation monitor and the meter is one
  simulation, polled once); two different values for one option are an error.

Simulated parts say so (`simulated = True` on the part), `describe()` lists every part and
whether it is simulated, and a real board or power supply next to a simulated isolation
monitor is refused unless `allow_simulated_parts=True`: that charger would energise a cable
nobody monitors.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from hal.interfaces import (
    Board,
    HalBackend,
    HalError,
    IsolationMonitor,
    Meter,
    PowerSupplyDC,
    PowerSupplyMode,
)

log = logging.getLogger(__name__)

# The four parts, in the order they are described and polled.
PARTS: tuple[str, ...] = ("board", "power_supply", "isolation_monitor", "meter")
PART_TYPES: dict[str, type] = {
    "board": Board,
    "power_supply": PowerSupplyDC,
    "isolation_monitor": IsolationMonitor,
    "meter": Meter,
}
# IEC 61557-8 says "insulation monitoring device"; the HAL attribute is isolation_monitor.
PART_ALIASES = {"insulation_monitor": "isolation_monitor"}

Part = Board | PowerSupplyDC | IsolationMonitor | Meter
PartSpec = Part | HalBackend | str | Mapping[str, Any]


class MissingPart(HalError, LookupError):
    """A part nobody provides (composition is explicit: nothing is filled in)."""


class SimulatedPartsRefused(HalError):
    """Real power hardware next to a simulated isolation monitor, not explicitly allowed."""


@runtime_checkable
class Polled(Protocol):
    def poll(self, now: float) -> None: ...


def part_kind(name: str) -> str:
    """The canonical part name ("insulation_monitor" -> "isolation_monitor")."""
    kind = PART_ALIASES.get(name, name)
    if kind not in PART_TYPES:
        raise ValueError(f"unknown HAL part {name!r}; the parts are {', '.join(PARTS)}")
    return kind


def is_simulated(part: object) -> bool:
    return getattr(part, "simulated", False) is True


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One line of `describe()`: which part, from what, simulated or real."""

    part: str
    source: str  # "serial /dev/ttymxc2", "sim", "MyMeter"
    simulated: bool

    def __str__(self) -> str:
        return f"{self.part}: {self.source} ({'SIMULATED' if self.simulated else 'real'})"


def _label(obj: object) -> str:
    label = getattr(obj, "label", None)
    if isinstance(label, str) and label:
        return label
    name = getattr(type(obj), "name", None)
    return name if isinstance(name, str) else type(obj).__name__


class CompositeBackend(HalBackend):
    """One HalBackend from four explicitly given parts (see the module docstring).

    Each keyword takes the part itself or the device (HalBackend) that provides it.
    `poll(now)` polls every distinct device once, in the order of `backends` (if given)
    then of first use. While the board's emergency stop is latched the composite keeps the
    power supply OFF (the interlock each single backend has inside itself).
    """

    name = "composite"

    def __init__(
        self,
        *,
        board: Board | HalBackend,
        power_supply: PowerSupplyDC | HalBackend,
        isolation_monitor: IsolationMonitor | HalBackend,
        meter: Meter | HalBackend,
        backends: Iterable[object] | None = None,
    ) -> None:
        given: dict[str, object] = {
            "board": board,
            "power_supply": power_supply,
            "isolation_monitor": isolation_monitor,
            "meter": meter,
        }
        self.sources: dict[str, object] = {}
        self._parts: dict[str, Any] = {}
        for kind in PARTS:
            source = given[kind]
            part = getattr(source, kind) if isinstance(source, HalBackend) else source
            if not isinstance(part, PART_TYPES[kind]):
                raise TypeError(
                    f"{kind}: expected a {PART_TYPES[kind].__name__} or a HalBackend "
                    f"providing one, got {type(source).__name__}"
                )
            self.sources[kind] = source
            self._parts[kind] = part
        ordered: list[object] = list(backends) if backends is not None else []
        for source in self.sources.values():
            if all(source is not o for o in ordered):
                ordered.append(source)
        self.backends = ordered
        psu_source, board_source = self.sources["power_supply"], self.sources["board"]
        bind = getattr(psu_source, "bind_emergency_stop", None)
        if callable(bind) and psu_source is not board_source:
            bind(self._parts["board"])

    @property
    def board(self) -> Board:
        part: Board = self._parts["board"]
        return part

    @property
    def power_supply(self) -> PowerSupplyDC:
        part: PowerSupplyDC = self._parts["power_supply"]
        return part

    @property
    def isolation_monitor(self) -> IsolationMonitor:
        part: IsolationMonitor = self._parts["isolation_monitor"]
        return part

    @property
    def meter(self) -> Meter:
        part: Meter = self._parts["meter"]
        return part

    def describe(self) -> tuple[PartInfo, ...]:
        """Every part, where it comes from and whether it is simulated (for the start-up
        log and status output)."""
        return tuple(
            PartInfo(kind, _label(self.sources[kind]), is_simulated(self._parts[kind]))
            for kind in PARTS
        )

    @property
    def simulated_parts(self) -> tuple[str, ...]:
        return tuple(info.part for info in self.describe() if info.simulated)

    @property
    def fault(self) -> str | None:
        faults = [f for b in self.backends if isinstance(f := getattr(b, "fault", None), str)]
        return "; ".join(faults) if faults else None

    def acknowledge_faults(self, now: float) -> None:
        for backend in self.backends:
            acknowledge = getattr(backend, "acknowledge_faults", None)
            if callable(acknowledge):
                acknowledge(now)

    def poll(self, now: float) -> None:
        for backend in self.backends:
            if isinstance(backend, Polled):
                backend.poll(now)
        psu = self.power_supply
        if self.board.emergency_stop_active and psu.mode is not PowerSupplyMode.OFF:
            try:
                psu.set_mode(PowerSupplyMode.OFF)
            except HalError as exc:
                log.error("could not switch the supply off on emergency stop: %s", exc)

    def close(self) -> None:
        try:
            super().close()
        finally:
            for backend in reversed(self.backends):
                close = getattr(backend, "close", None)
                if not callable(close):
                    continue
                try:
                    close()
                except Exception as exc:  # close the rest regardless
                    log.error("closing %s failed: %s", type(backend).__name__, exc)


def check_simulated_parts(backend: CompositeBackend, *, allow: bool) -> None:
    """Refuse real power hardware (board or power supply) beside a simulated isolation
    monitor unless `allow`: nothing would watch the insulation of a live cable."""
    info = {i.part: i for i in backend.describe()}
    real_power = [p for p in ("board", "power_supply") if not info[p].simulated]
    if real_power and info["isolation_monitor"].simulated and not allow:
        raise SimulatedPartsRefused(
            f"real {' and '.join(p.replace('_', ' ') for p in real_power)} with a SIMULATED "
            "isolation monitor: configure a real one (e.g. modbus-imd) or allow it explicitly "
            "(--allow-simulated-parts / [hal] allow_simulated_parts = true)"
        )


def _spec_key(spec: str | Mapping[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    options = dict(spec)
    name = options.pop("backend", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind}: a part table needs backend = NAME, got {dict(spec)!r}")
    return name, options


def compose(
    *,
    board: PartSpec | None = None,
    power_supply: PartSpec | None = None,
    isolation_monitor: PartSpec | None = None,
    meter: PartSpec | None = None,
    insulation_monitor: PartSpec | None = None,
    allow_simulated_parts: bool = False,
) -> CompositeBackend:
    """A backend from the four parts, each given explicitly (see the module docstring).

    `insulation_monitor` is another name for `isolation_monitor` (give one). Raises
    `MissingPart` naming every part not given, and `SimulatedPartsRefused` (see
    `check_simulated_parts`).
    """
    if insulation_monitor is not None:
        if isolation_monitor is not None:
            raise ValueError("give isolation_monitor or insulation_monitor, not both")
        isolation_monitor = insulation_monitor
    specs: dict[str, PartSpec | None] = {
        "board": board,
        "power_supply": power_supply,
        "isolation_monitor": isolation_monitor,
        "meter": meter,
    }
    missing = [kind for kind, spec in specs.items() if spec is None]
    if missing:
        raise MissingPart(
            f"no {', '.join(missing)} given: every HAL part is assigned explicitly "
            "(name `sim` for a simulated one)"
        )
    options_of = _shared_options(specs)
    return _build_composite(specs, options_of, allow_simulated_parts)


def _shared_options(specs: Mapping[str, PartSpec | None]) -> dict[str, dict[str, Any]]:
    """Parts naming one backend share one instance, built with the union of their options;
    two parts giving one backend different values for an option is an error."""
    options_of: dict[str, dict[str, Any]] = {}
    kinds_of: dict[str, list[str]] = {}
    for kind, spec in specs.items():
        if not isinstance(spec, str | Mapping):
            continue
        name, options = _spec_key(spec, kind)
        merged = options_of.setdefault(name, {})
        for key, value in options.items():
            if key in merged and merged[key] != value:
                raise ValueError(
                    f"{kind}: backend {name!r} is shared with the "
                    f"{', '.join(kinds_of[name])}, whose {key} is {merged[key]!r}"
                )
            merged[key] = value
        kinds_of.setdefault(name, []).append(kind)
    return options_of


def _build_composite(specs: Mapping[str, PartSpec | None],
                     options_of: dict[str, dict[str, Any]],
                     allow_simulated_parts: bool) -> CompositeBackend:
    """Create each named backend once, compose, check the simulated parts; on any failure the
    backends already created are closed."""
    from hal.registry import create_part_backend

    built: dict[str, object] = {}  # backend name -> the one instance
    sources: dict[str, object] = {}
    try:
        for kind, spec in specs.items():
            if isinstance(spec, str | Mapping):
                name, _ = _spec_key(spec, kind)
                if name not in built:
                    built[name] = create_part_backend(name, kind, **options_of[name])
                sources[kind] = built[name]
            else:
                sources[kind] = spec
        backend = CompositeBackend(
            board=sources["board"],  # type: ignore[arg-type]
            power_supply=sources["power_supply"],  # type: ignore[arg-type]
            isolation_monitor=sources["isolation_monitor"],  # type: ignore[arg-type]
            meter=sources["meter"],  # type: ignore[arg-type]
        )
        check_simulated_parts(backend, allow=allow_simulated_parts)
    except BaseException:
        for device in built.values():
            close = getattr(device, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        raise
    return backend


def describe(backend: HalBackend) -> tuple[PartInfo, ...]:
    """`describe()` of any backend: a composite's own, else one line per part."""
    if isinstance(backend, CompositeBackend):
        return backend.describe()
    inner = getattr(backend, "backend", None)  # a wrapper such as the SafetySupervisor
    if isinstance(inner, HalBackend):
        return describe(inner)
    return tuple(
        PartInfo(kind, _label(backend), is_simulated(getattr(backend, kind))) for kind in PARTS
    )


def log_parts(backend: HalBackend, logger: logging.Logger = log) -> None:
    """Log every part at start; simulated ones as warnings unless the whole HAL is sim."""
    infos = describe(backend)
    all_simulated = all(i.simulated for i in infos)
    for info in infos:
        level = logging.WARNING if info.simulated and not all_simulated else logging.INFO
        logger.log(level, "HAL %s", info)

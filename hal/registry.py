"""HAL backends by name: built-ins plus plugins from the "evse.hal_backends" entry points.

Modelled on python-can's interface registry: names map to "module:Class" strings, imported
only when asked for, so a missing optional dependency (pyserial, python-can) breaks only the
backend that needs it. A plugin package declares, in its pyproject.toml::

    [project.entry-points."evse.hal_backends"]
    mybackend = "my_package.backend:MyBackend"

Built-in names win over plugins, so a plugin cannot silently replace "sim".

Several backends combine into one `CompositeBackend` (`create_backend_from_spec`,
`create_backend_from_entries`, `create_backend_from_config`): "serial:/dev/ttyS1,can:can0"
takes the board from the safety MCU, the power supply from the CAN modules and the rest
from `sim`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

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

ENTRY_POINT_GROUP = "evse.hal_backends"

# name -> "module:Class".
BUILTIN_BACKENDS: dict[str, str] = {
    "sim": "hal.backends.sim:SimBackend",
    "serial": "hal.backends.serial:SerialBackend",
    "can": "hal.backends.can:CanBackend",
}

_registered: dict[str, str | type[HalBackend]] = {}


class BackendNotFound(LookupError):
    pass


def register_backend(name: str, target: str | type[HalBackend], *, replace: bool = False) -> None:
    """Register a backend class (or "module:Class") at run time, e.g. from a test."""
    if not replace and (name in BUILTIN_BACKENDS or name in _registered):
        raise ValueError(f"backend {name!r} already exists")
    _registered[name] = target


def unregister_backend(name: str) -> None:
    _registered.pop(name, None)


def _plugins() -> dict[str, str]:
    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN_BACKENDS:
            log.warning("entry point %s=%s ignored: built-in name", ep.name, ep.value)
            continue
        found[ep.name] = ep.value
    return found


def available_backends() -> list[str]:
    """Every backend name, without importing any of them."""
    return sorted({*BUILTIN_BACKENDS, *_plugins(), *_registered})


def _load(target: str) -> type[HalBackend]:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    cls: Any = module
    for part in attr.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, HalBackend)):
        raise TypeError(f"{target} is not a HalBackend subclass")
    return cls


def resolve_backend(name: str) -> type[HalBackend]:
    """The backend class for `name`; imports its module on first use."""
    # Run-time registrations first: replacing a built-in needs an explicit replace=True.
    target: str | type[HalBackend] | None = _registered.get(name)
    if target is None:
        target = BUILTIN_BACKENDS.get(name)
    if target is None:
        target = _plugins().get(name)
    if target is None:
        raise BackendNotFound(
            f"no HAL backend {name!r}; available: {', '.join(available_backends())}"
        )
    return target if isinstance(target, type) else _load(target)


def create_backend(name: str, **options: Any) -> HalBackend:
    """Instantiate backend `name` with its keyword options, e.g. create_backend("sim")."""
    return resolve_backend(name)(**options)


# ---- composite backends: parts from several backends ---------------------------------------

PARTS = ("board", "power_supply", "isolation_monitor", "meter")


class CompositeBackend(HalBackend):
    """One HalBackend whose parts come from several: e.g. the board from `serial`, the
    power supply from `can`, isolation monitor and meter from `sim`.

    `poll(now)` polls every distinct backend once, in the order given. While the board's
    emergency stop is latched the composite keeps the power supply OFF (the interlock
    each single backend has inside itself).
    """

    name = "composite"

    def __init__(
        self,
        *,
        board: HalBackend,
        power_supply: HalBackend,
        isolation_monitor: HalBackend,
        meter: HalBackend,
        backends: list[HalBackend] | None = None,
    ) -> None:
        self.sources = {
            "board": board,
            "power_supply": power_supply,
            "isolation_monitor": isolation_monitor,
            "meter": meter,
        }
        ordered = list(backends) if backends is not None else []
        for b in self.sources.values():
            if all(b is not o for o in ordered):
                ordered.append(b)
        self.backends = ordered
        bind = getattr(power_supply, "bind_emergency_stop", None)
        if callable(bind) and power_supply is not board:
            bind(board.board)

    @property
    def board(self) -> Board:
        return self.sources["board"].board

    @property
    def power_supply(self) -> PowerSupplyDC:
        return self.sources["power_supply"].power_supply

    @property
    def isolation_monitor(self) -> IsolationMonitor:
        return self.sources["isolation_monitor"].isolation_monitor

    @property
    def meter(self) -> Meter:
        return self.sources["meter"].meter

    @property
    def fault(self) -> str | None:
        faults = [f for b in self.backends if (f := getattr(b, "fault", None))]
        return "; ".join(faults) if faults else None

    def acknowledge_faults(self, now: float) -> None:
        for backend in self.backends:
            backend.acknowledge_faults(now)

    def poll(self, now: float) -> None:
        for backend in self.backends:
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
                try:
                    backend.close()
                except Exception as exc:  # close the rest regardless
                    log.error("closing %s failed: %s", type(backend).__name__, exc)


def _provides(cls: type[HalBackend]) -> tuple[str, ...]:
    provided: tuple[str, ...] | None = getattr(cls, "provides", None)
    return tuple(provided) if provided else PARTS


def target_options(name: str, target: str | None) -> dict[str, Any]:
    """Keyword options from a backend's target string (what follows "name:" in a spec).

    serial: the port ("/dev/ttyS1", or any pyserial URL). can: "interface:channel"
    ("socketcan:can0", "virtual:bench"), an interface alone ("virtual"), or a channel
    alone ("can0": socketcan). Any other backend gets it as its `target` option.

    Two CAN forms for test benches: "udp_multicast:[GROUP]:PORT" (or "GROUP:PORT" for an
    IPv4 group) gives python-can's udp_multicast bus a port (default 43113), and the
    interface "virtual+sim" ("virtual+sim" or "virtual+sim:channel") is the process-local
    virtual bus with simulated modules on it (`CanBackend(simulated_modules=True)`).
    """
    if target is None:
        return {}
    if not target:
        raise ValueError(f"empty target for backend {name!r}")
    if name == "serial":
        return {"port": target}
    if name == "can":
        first, sep, rest = target.partition(":")
        if first == "virtual+sim":
            opts: dict[str, Any] = {"interface": "virtual", "simulated_modules": True}
            if rest:
                opts["channel"] = rest
            return opts
        if first == "udp_multicast" and sep:
            return {"interface": first, **_multicast_channel(rest)}
        if sep:
            return {"interface": first, "channel": rest}
        try:
            from can.interfaces import VALID_INTERFACES
        except ImportError:  # python-can missing: the can backend fails later, clearly
            VALID_INTERFACES = frozenset({"virtual", "socketcan", "udp_multicast"})
        if first in VALID_INTERFACES:
            return {"interface": first}
        return {"interface": "socketcan", "channel": first}
    return {"target": target}


def _multicast_channel(text: str) -> dict[str, Any]:
    """ "[ff01::1:2]:43114" -> group and port; "239.0.0.1:43114" likewise; else the group."""
    if text.startswith("["):
        group, sep, port = text[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            raise ValueError(f"bad udp_multicast target {text!r}: use [GROUP]:PORT")
        port = port[1:]
    elif text.count(":") == 1:  # IPv4 group with a port
        group, _, port = text.partition(":")
    else:
        group, port = text, ""
    opts: dict[str, Any] = {"channel": group}
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad udp_multicast port in {text!r}")
        opts["bus_options"] = {"port": int(port)}
    return opts


def parse_backend_spec(spec: str) -> list[tuple[str, dict[str, Any]]]:
    """ "serial:/dev/ttyS1,can:socketcan:can0" -> [("serial", {...}), ("can", {...})].

    Items are separated by commas; each is a backend name, optionally followed by ":" and
    its target (see `target_options`).
    """
    items: list[tuple[str, dict[str, Any]]] = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            raise ValueError(f"empty item in backend spec {spec!r}")
        name, sep, target = raw.partition(":")
        items.append((name.strip(), target_options(name.strip(), target.strip() if sep else None)))
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"backend named twice in {spec!r}")
    return items


def create_backend_from_entries(
    entries: Iterable[tuple[str, str | None, Mapping[str, Any]]],
) -> HalBackend:
    """Build from (name, target, options) entries, e.g. a config loader's backend list.

    One entry is that backend alone. Several make a `CompositeBackend`: each backend
    supplies the parts its class `provides` (serial: board, can: power_supply; others:
    all), the first to claim a part wins, and parts nobody claims come from `sim` (the
    listed one, or a default one). The backend that supplies the isolation monitor (sim
    by default) is built first and handed as `base` to the others that take one, so one
    simulation is shared and polled once.
    """
    items: list[tuple[str, dict[str, Any]]] = []
    for name, target, options in entries:
        if any(n == name for n, _ in items):
            raise ValueError(f"backend {name!r} given more than once")
        items.append((name, {**dict(options), **target_options(name, target)}))
    if not items:
        raise ValueError("no backend given")
    if len(items) == 1:
        name, opts = items[0]
        return create_backend(name, **opts)
    assignment: dict[str, str] = {}
    for name, _ in items:
        for part in _provides(resolve_backend(name)):
            assignment.setdefault(part, name)
    for part in PARTS:
        assignment.setdefault(part, "sim")
    options = dict(items)
    names = [n for n, _ in items if n in assignment.values()]
    if "sim" in assignment.values() and "sim" not in names:
        names.append("sim")
    unused = [n for n, _ in items if n not in names]
    if unused:
        raise ValueError(f"backends {unused} supply no part (every part is taken)")
    base_name = assignment["isolation_monitor"]
    built: dict[str, HalBackend] = {}
    try:
        built[base_name] = create_backend(base_name, **options.get(base_name, {}))
        for name in names:
            if name in built:
                continue
            opts = dict(options.get(name, {}))
            cls = resolve_backend(name)
            if "base" in inspect.signature(cls).parameters and "base" not in opts:
                opts["base"] = built[base_name]
            built[name] = cls(**opts)
    except BaseException:
        for backend in built.values():
            with contextlib.suppress(Exception):
                backend.close()
        raise
    # The hardware links first, the shared base last: the physics then sees this poll's
    # commands.
    order = [built[n] for n in names if n != base_name] + [built[base_name]]
    return CompositeBackend(
        board=built[assignment["board"]],
        power_supply=built[assignment["power_supply"]],
        isolation_monitor=built[assignment["isolation_monitor"]],
        meter=built[assignment["meter"]],
        backends=order,
    )


def create_backend_from_spec(
    spec: str, options: Mapping[str, Mapping[str, Any]] | None = None
) -> HalBackend:
    """Build from a spec string ("serial:/dev/ttyS1,can:socketcan:can0"); `options` adds
    keyword options per backend name (the spec's targets win)."""
    extra = options or {}
    items = parse_backend_spec(spec)
    entries = [(name, None, {**dict(extra.get(name, {})), **opts}) for name, opts in items]
    listed = {name for name, _ in items}
    for name in extra:
        if name in listed:
            continue
        if name == "sim" and len(items) > 1:  # options of the implicit shared sim
            entries.append(("sim", None, dict(extra["sim"])))
        else:
            raise ValueError(f"options for {name!r}, which {spec!r} does not use")
    return create_backend_from_entries(entries)


def create_backend_from_config(config: Mapping[str, Any]) -> HalBackend:
    """Build from a config file's [hal] table (the keys of docs/config.md):

        backends = "serial:/dev/ttymxc2,can:socketcan:can0"     # short form, or
        [[hal.backends]]                                        # long form, repeated
        name = "can"; target = "socketcan:can0"; options = {bitrate = 125000}

    A `supervisor` table, if present, wraps the result in `hal.supervisor.SafetySupervisor`
    with those keyword options.
    """
    unknown = set(config) - {"backends", "supervisor"}
    if unknown:
        raise ValueError(f"unknown [hal] keys: {sorted(unknown)}")
    raw = config.get("backends", "sim")
    if isinstance(raw, str):
        backend = create_backend_from_spec(raw)
    else:
        entries = []
        for item in raw:
            if not isinstance(item, Mapping) or "name" not in item:
                raise ValueError(f"each [[hal.backends]] entry needs a name, got {item!r}")
            extra_keys = set(item) - {"name", "target", "options"}
            if extra_keys:
                raise ValueError(f"unknown keys in [[hal.backends]]: {sorted(extra_keys)}")
            entries.append((str(item["name"]), item.get("target"), item.get("options", {})))
        backend = create_backend_from_entries(entries)
    supervisor = config.get("supervisor")
    if supervisor is None:
        return backend
    from hal.supervisor import SafetySupervisor

    return SafetySupervisor(backend, **dict(supervisor))

"""HAL backends by name: built-ins plus plugins from the "evse.hal_backends" entry points.

Modelled on python-can's interface registry: names map to "module:Class" strings, imported
only when asked for, so a missing optional dependency (pyserial, python-can) breaks only the
backend that needs it. A plugin package declares, in its pyproject.toml::

    [project.entry-points."evse.hal_backends"]
    mybackend = "my_package.backend:MyBackend"

Built-in names win over plugins, so a plugin cannot silently replace "sim".

Part backends: a backend that provides only some parts (`provides`, e.g. a Modbus meter),
or a class of one part's ABC (an integrator's `Meter`), registered by name with
`register_part` or the "evse.hal_parts" entry points. Every backend name is also a part
backend name.

Several backends combine into one `CompositeBackend` (`hal.parts.compose`,
`create_backend_from_spec`, `create_backend_from_entries`, `create_backend_from_config`),
every part assigned explicitly: "serial:/dev/ttyS1,can:can0,sim" takes the board from the
safety MCU, the power supply from the CAN modules and, because `sim` is named, the
isolation monitor and meter from a simulation; "board=serial:/dev/ttyS1,
power_supply=can:can0,isolation_monitor=modbus-imd:rtu:/dev/ttyS3,meter=modbus-meter:tcp:
10.0.0.7:502" names each part. A part nobody provides is an error, never a simulation.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from hal.interfaces import HalBackend
from hal.parts import (
    PART_TYPES,
    PARTS,
    CompositeBackend,
    MissingPart,
    PartSpec,
    compose,
    part_kind,
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

PART_ENTRY_POINT_GROUP = "evse.hal_parts"

# Backends for single parts: name -> "module:Class" (a HalBackend with `provides`, or a
# class of one part's ABC).
BUILTIN_PARTS: dict[str, str] = {
    "modbus-meter": "hal.backends.modbus:ModbusMeterBackend",
    "modbus-imd": "hal.backends.modbus:ModbusImdBackend",
}

_registered_parts: dict[str, str | type] = {}


class BackendNotFound(LookupError):
    pass


def register_backend(name: str, target: str | type[HalBackend], *, replace: bool = False) -> None:
    """Register a backend class (or "module:Class") at run time, e.g. from a test."""
    if not replace and (name in BUILTIN_BACKENDS or name in _registered):
        raise ValueError(f"backend {name!r} already exists")
    _registered[name] = target


def unregister_backend(name: str) -> None:
    """Remove a backend registered under `name` (no error if there is none)."""
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
    cls = _load_any(target)
    if not issubclass(cls, HalBackend):
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


# ---- part backends ---------------------------------------------------------------------------


def register_part(name: str, target: str | type, *, replace: bool = False) -> None:
    """Register a part backend: a class of one part's ABC (e.g. an integrator's `Meter`,
    built with the part's options) or a HalBackend that `provides` some parts."""
    taken = name in BUILTIN_PARTS or name in BUILTIN_BACKENDS or name in _registered_parts
    if not replace and taken:
        raise ValueError(f"part backend {name!r} already exists")
    _registered_parts[name] = target


def unregister_part(name: str) -> None:
    """Remove a part registered under `name` (no error if there is none)."""
    _registered_parts.pop(name, None)


def _part_plugins() -> dict[str, str]:
    found: dict[str, str] = {}
    for ep in entry_points(group=PART_ENTRY_POINT_GROUP):
        if ep.name in BUILTIN_PARTS or ep.name in BUILTIN_BACKENDS:
            log.warning("entry point %s=%s ignored: built-in name", ep.name, ep.value)
            continue
        found[ep.name] = ep.value
    return found


def available_parts() -> list[str]:
    """Every name a part can be built from (part backends and whole backends)."""
    return sorted({*BUILTIN_PARTS, *_part_plugins(), *_registered_parts, *available_backends()})


def _load_any(target: str) -> type:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for name in attr.split("."):
        obj = getattr(obj, name)
    if not isinstance(obj, type):
        raise TypeError(f"{target} is not a class")
    return obj


def resolve_part(name: str) -> type:
    """The class of part backend `name`: registered parts, built-in parts, part plugins,
    then the whole backends ("sim", "serial", "can", ...)."""
    target: str | type | None = _registered_parts.get(name)
    if target is None:
        target = BUILTIN_PARTS.get(name)
    if target is None:
        target = _part_plugins().get(name)
    if target is None:
        try:
            return resolve_backend(name)
        except BackendNotFound:
            raise BackendNotFound(
                f"no HAL part backend {name!r}; available: {', '.join(available_parts())}"
            ) from None
    return target if isinstance(target, type) else _load_any(target)


def provides(cls: type) -> tuple[str, ...]:
    """The parts a part-backend class provides."""
    if issubclass(cls, HalBackend):
        return _provides(cls)
    return tuple(kind for kind in PARTS if issubclass(cls, PART_TYPES[kind]))


def create_part_backend(name: str, part: str, **options: Any) -> Any:
    """Build part backend `name` for `part` ("meter", ...) with its keyword options: a
    HalBackend (a device) or the part object itself."""
    kind = part_kind(part)
    cls = resolve_part(name)
    if kind not in provides(cls):
        raise MissingPart(
            f"{kind}: backend {name!r} provides only {', '.join(provides(cls)) or 'nothing'}"
        )
    return cls(**options)


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
    if name in ("modbus-meter", "modbus-imd"):
        return _modbus_target(target)
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


def _modbus_target(text: str) -> dict[str, Any]:
    """ "tcp:HOST:PORT" / "tcp:[V6]:PORT" / "tcp:HOST" (port 502) / "rtu:/dev/ttyUSB0"."""
    transport, _, rest = text.partition(":")
    if transport == "rtu" and rest:
        return {"transport": "rtu", "device": rest}
    if transport == "tcp" and rest:
        if rest.startswith("["):
            host, sep, port = rest[1:].partition("]")
            port = port[1:] if sep and port.startswith(":") else ""
        elif rest.count(":") == 1:
            host, _, port = rest.partition(":")
        else:
            host, port = rest, ""
        opts: dict[str, Any] = {"transport": "tcp", "host": host}
        if port:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"bad Modbus TCP port in {text!r}")
            opts["port"] = int(port)
        return opts
    raise ValueError(f"bad Modbus target {text!r}: use tcp:HOST[:PORT] or rtu:DEVICE")


SpecItem = tuple[str | None, str, dict[str, Any]]  # (part or None, backend name, options)


def _parse_items(spec: str) -> list[SpecItem]:
    items: list[SpecItem] = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            raise ValueError(f"empty item in backend spec {spec!r}")
        head, sep, target = raw.partition(":")
        part: str | None = None
        if "=" in head:
            part_name, _, head = head.partition("=")
            part = part_kind(part_name.strip())
        name = head.strip()
        items.append((part, name, target_options(name, target.strip() if sep else None)))
    plain = [n for p, n, _ in items if p is None]
    if len(set(plain)) != len(plain):
        raise ValueError(f"backend named twice in {spec!r}")
    parts = [p for p, _, _ in items if p is not None]
    if len(set(parts)) != len(parts):
        raise ValueError(f"a part assigned twice in {spec!r}")
    return items


def parse_backend_spec(spec: str) -> list[tuple[str, dict[str, Any]]]:
    """ "serial:/dev/ttyS1,can:socketcan:can0" -> [("serial", {...}), ("can", {...})].

    Items are separated by commas; each is a backend name, optionally followed by ":" and
    its target (see `target_options`). Items assigning a part ("meter=sim") are the
    business of `create_backend_from_spec`.
    """
    items = _parse_items(spec)
    if any(part is not None for part, _, _ in items):
        raise ValueError(f"{spec!r} assigns parts: use create_backend_from_spec")
    return [(name, opts) for _, name, opts in items]


def _single(name: str, opts: dict[str, Any]) -> HalBackend:
    """One plain backend for the whole HAL: it must provide every part itself."""
    cls = resolve_backend(name)
    lacking = [p for p in PARTS if p not in _provides(cls)]
    if lacking:
        raise MissingPart(
            f"{name!r} provides only {', '.join(_provides(cls))}; no backend for "
            f"{', '.join(lacking)}: name one per part (e.g. meter=modbus-meter:tcp:HOST) "
            "or add `sim` to simulate them"
        )
    return create_backend(name, **opts)


def _options_by_backend(items: list[SpecItem]) -> dict[str, dict[str, Any]]:
    """Each backend's options; a backend named twice must be given the same ones."""
    options_of: dict[str, dict[str, Any]] = {}
    for _part, name, opts in items:
        if opts:
            if options_of.get(name, opts) != opts:
                raise ValueError(f"backend {name!r} given twice with different options")
            options_of[name] = opts
    return options_of


def _assign(items: list[SpecItem]) -> dict[str, dict[str, Any]]:
    """part -> {"backend": name}: explicit `part=` items first, then each plain item claims
    the parts its backend provides that are still free. A part left over is an error."""
    assignment: dict[str, dict[str, Any]] = {
        part: {"backend": name} for part, name, _ in items if part is not None}
    for part, name, _ in items:
        if part is not None:
            continue
        claimed = [p for p in provides(resolve_part(name)) if p not in assignment]
        if not claimed:
            raise ValueError(f"backend {name!r} supplies no part (every part is taken)")
        for p in claimed:
            assignment[p] = {"backend": name}
    missing = [p for p in PARTS if p not in assignment]
    if missing:
        raise MissingPart(
            f"no backend for {', '.join(missing)}: name one per part "
            "(e.g. meter=modbus-meter:tcp:HOST) or add `sim` to simulate them"
        )
    return assignment


def _build(items: list[SpecItem], allow_simulated_parts: bool) -> HalBackend:
    """Assign every part: explicit `part=` items first, then each plain item claims the
    parts its backend provides (the first wins). A part left over is an error."""
    if not items:
        raise ValueError("no backend given")
    if len(items) == 1 and items[0][0] is None:
        _, name, opts = items[0]
        return _single(name, opts)
    options_of = _options_by_backend(items)
    specs: dict[str, PartSpec] = {
        part: {**spec, **options_of.get(str(spec["backend"]), {})}
        for part, spec in _assign(items).items()
    }
    return compose(
        board=specs["board"],
        power_supply=specs["power_supply"],
        isolation_monitor=specs["isolation_monitor"],
        meter=specs["meter"],
        allow_simulated_parts=allow_simulated_parts,
    )


def create_backend_from_entries(
    entries: Iterable[tuple[str, str | None, Mapping[str, Any]]],
    *,
    allow_simulated_parts: bool = False,
) -> HalBackend:
    """Build from (name, target, options) entries, e.g. a config loader's backend list.

    One entry is that backend alone (it must provide every part). Several make a
    `CompositeBackend`: each backend supplies the parts its class `provides` (serial:
    board, can: power_supply; sim and others: all), the first to claim a part wins; a part
    nobody claims is an error (list `sim` to simulate the rest, explicitly).
    """
    items: list[SpecItem] = []
    for name, target, options in entries:
        if any(n == name for _, n, _ in items):
            raise ValueError(f"backend {name!r} given more than once")
        items.append((None, name, {**dict(options), **target_options(name, target)}))
    return _build(items, allow_simulated_parts)


def create_backend_from_spec(
    spec: str,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    allow_simulated_parts: bool = False,
) -> HalBackend:
    """Build from a spec string ("serial:/dev/ttyS1,can:socketcan:can0,sim", or per part
    "board=serial:/dev/ttyS1,power_supply=can:can0,isolation_monitor=sim,meter=sim");
    `options` adds keyword options per backend name (the spec's targets win)."""
    extra = options or {}
    items = [
        (part, name, {**dict(extra.get(name, {})), **opts})
        for part, name, opts in _parse_items(spec)
    ]
    listed = {name for _, name, _ in items}
    for name in extra:
        # The charger passes sim options (the EV's contactors) whatever the spec.
        if name not in listed and name != "sim":
            raise ValueError(f"options for {name!r}, which {spec!r} does not use")
    return _build(items, allow_simulated_parts)


def create_backend_from_config(config: Mapping[str, Any]) -> HalBackend:
    """Build from a config file's [hal] table (the keys of docs/config.md):

        backends = "serial:/dev/ttymxc2,can:socketcan:can0,sim"   # short form, or
        [[hal.backends]]                                        # long form, repeated
        name = "can"; target = "socketcan:can0"; options = {bitrate = 125000}
        # or one table per part (instead of backends):
        [hal.parts]
        board = {backend = "serial", port = "/dev/ttymxc2"}
        meter = {backend = "modbus-meter", transport = "tcp", host = "10.0.0.7"}
        ...
        allow_simulated_parts = false

    A `supervisor` table, if present, wraps the result in `hal.supervisor.SafetySupervisor`
    with those keyword options.
    """
    unknown = set(config) - {"backends", "parts", "supervisor", "allow_simulated_parts"}
    if unknown:
        raise ValueError(f"unknown [hal] keys: {sorted(unknown)}")
    allow = config.get("allow_simulated_parts", False)
    if not isinstance(allow, bool):
        raise ValueError("allow_simulated_parts must be true or false")
    parts = config.get("parts")
    if parts is not None:
        if "backends" in config:
            raise ValueError("give [hal] backends or [hal.parts], not both")
        backend = compose_from_parts(parts, allow_simulated_parts=allow)
    else:
        raw = config.get("backends", "sim")
        if isinstance(raw, str):
            backend = create_backend_from_spec(raw, allow_simulated_parts=allow)
        else:
            entries = []
            for item in raw:
                if not isinstance(item, Mapping) or "name" not in item:
                    raise ValueError(f"each [[hal.backends]] entry needs a name, got {item!r}")
                extra_keys = set(item) - {"name", "target", "options"}
                if extra_keys:
                    raise ValueError(f"unknown keys in [[hal.backends]]: {sorted(extra_keys)}")
                entries.append((str(item["name"]), item.get("target"), item.get("options", {})))
            backend = create_backend_from_entries(entries, allow_simulated_parts=allow)
    supervisor = config.get("supervisor")
    if supervisor is None:
        return backend
    from hal.supervisor import SafetySupervisor

    return SafetySupervisor(backend, **dict(supervisor))


def compose_from_parts(
    parts: Mapping[str, Any], *, allow_simulated_parts: bool = False
) -> HalBackend:
    """Build from a [hal.parts] table: part -> {backend = NAME, target = "...", **options}
    (or just NAME). `target` is the spec form's target ("tcp:10.0.0.7:502")."""
    specs: dict[str, PartSpec] = {}
    for key, value in parts.items():
        kind = part_kind(key)
        if kind in specs:
            raise ValueError(f"[hal.parts] assigns the {kind} twice")
        if isinstance(value, str):
            specs[kind] = value
            continue
        if not isinstance(value, Mapping) or not isinstance(value.get("backend"), str):
            raise ValueError(f"[hal.parts] {key} needs backend = NAME, got {value!r}")
        table = dict(value)
        target = table.pop("target", None)
        if target is not None:
            table.update(target_options(str(table["backend"]), str(target)))
        specs[kind] = table
    return compose(**specs, allow_simulated_parts=allow_simulated_parts)


__all__ = [
    "BUILTIN_BACKENDS",
    "BUILTIN_PARTS",
    "BackendNotFound",
    "CompositeBackend",
    "MissingPart",
    "available_backends",
    "available_parts",
    "compose_from_parts",
    "create_backend",
    "create_backend_from_config",
    "create_backend_from_entries",
    "create_backend_from_spec",
    "create_part_backend",
    "parse_backend_spec",
    "provides",
    "register_backend",
    "register_part",
    "resolve_backend",
    "resolve_part",
    "target_options",
    "unregister_backend",
    "unregister_part",
]

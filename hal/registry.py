"""HAL backends by name: built-ins plus plugins from the "evse.hal_backends" entry points.

Modelled on python-can's interface registry: names map to "module:Class" strings, imported
only when asked for, so a missing optional dependency (pyserial, python-can) breaks only the
backend that needs it. A plugin package declares, in its pyproject.toml::

    [project.entry-points."evse.hal_backends"]
    mybackend = "my_package.backend:MyBackend"

Built-in names win over plugins, so a plugin cannot silently replace "sim".
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

from hal.interfaces import HalBackend

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "evse.hal_backends"

# name -> "module:Class"; further backends (serial, can) register here when they land.
BUILTIN_BACKENDS: dict[str, str] = {
    "sim": "hal.backends.sim:SimBackend",
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

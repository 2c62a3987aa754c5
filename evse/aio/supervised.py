"""Connectors under the safety supervisor: how `evse secc` wraps each HAL backend.

    station = supervised_station(backends, limits=config.limits, supervise=True)

Each backend is wrapped in a `hal.supervisor.SafetySupervisor` (its keyword options from
`supervisor_options`, the config file's [hal.supervisor] table) and driven by an
`evse.control.supervision.SupervisedController`, which keeps the supervisor's limits at the
EVSE limits (and the EV's, once known), records each trip in the session, clears a trip
whose cause has gone when the next EV connects, and derates the SECC's limits when the
power supply loses capability. Unsupervised backends get the plain `ChargerController`.

Supervision is on by default for every backend list with real hardware in it (anything but
`sim`) and optional for `sim` (`evse secc --supervisor`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from evse.aio.secc_server import Connector, Station
from evse.control.controller import ChargerController, ControllerConfig
from evse.control.supervision import SupervisedController, SupervisionPolicy
from evse.protocol.limits import EvseLimits
from hal.interfaces import HalBackend

log = logging.getLogger(__name__)

SUPERVISOR_OPTIONS = frozenset({
    "stale_after", "contactor_timeout", "zero_current", "open_timeout", "voltage_tolerance",
    "current_tolerance", "isolation_ohm_per_volt",
})


def supervision_default(spec: str) -> bool:
    """On unless every backend in `spec` ("serial:/dev/x,can:can0") is the simulator."""
    return any(part.strip().split(":", 1)[0].split("=")[-1].strip() != "sim"
               for part in spec.split(","))


def supervise(backend: HalBackend, options: Mapping[str, Any] | None = None) -> HalBackend:
    """`backend` wrapped in a SafetySupervisor (unless it is one already)."""
    from hal.supervisor import SafetySupervisor

    if isinstance(backend, SafetySupervisor):
        return backend
    opts = dict(options or {})
    unknown = set(opts) - SUPERVISOR_OPTIONS
    if unknown:
        raise ValueError(f"unknown supervisor options: {sorted(unknown)}")
    return SafetySupervisor(backend, **opts)


def supervised_station(
    backends: Sequence[HalBackend],
    *,
    limits: EvseLimits | None,
    supervise_backends: bool = True,
    supervisor_options: Mapping[str, Any] | None = None,
    policy: SupervisionPolicy | None = None,
    ids: Sequence[str] | None = None,
    speedup: float = 1.0,
    controller_config: ControllerConfig | None = None,
) -> Station:
    """A Station whose connectors run under the supervisor (or plain, if not wanted)."""
    if not supervise_backends:
        return Station.from_backends(backends, ids=ids, speedup=speedup,
                                     controller_config=controller_config)
    names = list(ids) if ids is not None else [str(i + 1) for i in range(len(backends))]
    connectors = []
    for name, backend in zip(names, backends, strict=True):
        hal = supervise(backend, supervisor_options)
        controller: ChargerController = SupervisedController(
            hal, evse_limits=limits, policy=policy, config=controller_config, name=name)
        connectors.append(Connector(name, hal, controller))
    log.info("safety supervisor on %d connector(s)", len(connectors))
    return Station(connectors, speedup=speedup)


def station_for_secc(
    spec: str,
    backends: Sequence[HalBackend],
    *,
    limits: EvseLimits,
    ids: Sequence[str] | None,
    speedup: float,
    supervise_flag: bool | None,
    supervisor_options: Mapping[str, Any],
    config: Any = None,
) -> Station:
    """The `evse secc` station: supervision as the command line says (`supervise_flag`,
    `supervisor_options`), else as the config file's [hal.supervisor] (`config`, an
    `evse.config.SupervisorConfig`), else on for real hardware, off for `sim`."""
    for part in spec.split(","):
        name, _, target = part.strip().partition(":")
        name = name.split("=")[-1].strip()  # "power_supply=can"
        if name == "can" and (target == "virtual" or target.startswith("virtual:")):
            log.warning("%s: python-can's virtual bus reaches this process only: no power "
                        "module elsewhere can answer (use can:virtual+sim for simulated "
                        "modules in this process, or udp_multicast; docs/hardware.md)", part)
    enabled = supervise_flag
    if enabled is None and config is not None:
        enabled = config.enabled
    if enabled is None:
        enabled = supervision_default(spec)
    options = dict(config.options) if config is not None else {}
    options.update(supervisor_options)
    policy = None
    if config is not None:
        policy = SupervisionPolicy(
            reset_on_new_session=config.reset_on_new_session,
            reset_emergency_stop=config.reset_emergency_stop,
            derate_limits=config.derate_limits,
        )
    return supervised_station(backends, limits=limits, supervise_backends=enabled,
                              supervisor_options=options, policy=policy, ids=ids,
                              speedup=speedup)

"""The station: N `Connector`s (HAL backend + charger controller each) sharing one SECC
process, and the session event stream of all of them (`Station.events`, evse.events)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evse.control.controller import ChargerController, ControllerConfig
from evse.events import (
    DEFAULT_LIFECYCLE_MAX,
    DEFAULT_MEASUREMENTS_MAX,
    Callback,
    EventBus,
    EventHandle,
    Subscription,
)
from hal.interfaces import HalBackend

if TYPE_CHECKING:
    from evse.aio.secc_server import _Connection

__all__ = ["Connector", "Station"]


class Connector:
    """One charging point: its HAL backend, its controller, the connection using it."""

    def __init__(self, connector_id: str, backend: HalBackend, controller: ChargerController):
        self.id = connector_id
        self.backend = backend
        self.controller = controller
        # the server's connection using it (None: free); only the server sets it
        self.handler: _Connection | None = None

    @property
    def busy(self) -> bool:
        return self.handler is not None


class Station:
    """N connectors sharing one SECC process; `speedup` scales the HAL clock (demos)."""

    def __init__(self, connectors: Sequence[Connector], *, speedup: float = 1.0) -> None:
        if not connectors:
            raise ValueError("a station needs at least one connector")
        if not speedup > 0:
            raise ValueError("speedup must be > 0")
        self.connectors = list(connectors)
        self.speedup = speedup
        self._origin: float | None = None
        # the session event stream of every connector (evse.events); the server publishes
        self.bus = EventBus()

    def events(self, connector_id: str | None = None, *,
               measurements_max: int = DEFAULT_MEASUREMENTS_MAX,
               lifecycle_max: int = DEFAULT_LIFECYCLE_MAX) -> Subscription:
        """`async for event in station.events(): ...` (every connector, or one): see
        `evse.events` for the event types and the back-pressure rules."""
        return self.bus.subscribe(connector_id, measurements_max=measurements_max,
                                  lifecycle_max=lifecycle_max)

    def on_event(self, callback: Callback, connector_id: str | None = None) -> EventHandle:
        """Call `callback` (plain or async) with each session event, from its own task."""
        return self.bus.on_event(callback, connector_id)

    @classmethod
    def from_backends(
        cls,
        backends: Sequence[HalBackend],
        *,
        speedup: float = 1.0,
        controller_config: ControllerConfig | None = None,
        ids: Sequence[str] | None = None,
    ) -> Station:
        ids = list(ids) if ids is not None else [str(i + 1) for i in range(len(backends))]
        return cls(
            [Connector(i, b, ChargerController(b, config=controller_config, name=i))
             for i, b in zip(ids, backends, strict=True)],
            speedup=speedup,
        )

    @classmethod
    def sim(
        cls,
        n: int = 1,
        *,
        speedup: float = 1.0,
        controller_config: ControllerConfig | None = None,
        **sim_options: Any,
    ) -> Station:
        """N connectors on the `sim` HAL backend (options go to each SimBackend)."""
        from hal.registry import create_backend

        backends = [create_backend("sim", **sim_options) for _ in range(n)]
        return cls.from_backends(backends, speedup=speedup, controller_config=controller_config)

    def hal_time(self, loop_now: float) -> float:
        """The HAL's clock: the loop clock, sped up by `speedup` from the first call."""
        if self._origin is None:
            self._origin = loop_now
        return self._origin + (loop_now - self._origin) * self.speedup

    def connector(self, connector_id: str) -> Connector:
        for c in self.connectors:
            if c.id == connector_id:
                return c
        raise KeyError(connector_id)

    def free_connector(self) -> Connector | None:
        return next((c for c in self.connectors if not c.busy), None)

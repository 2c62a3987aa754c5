"""What the controller tests share: a controller driven by a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evse.protocol import events as ev


class ClockedController:
    """Feeds effects to `self.ctl` and polls it every `dt` on a fake clock (subclasses build
    `ctl`, set `t` and call `start()`)."""

    ctl: Any
    t: float

    def start(self) -> None:
        self.events: list[ev.Event] = []
        self.ctl.poll(self.t)

    def effect(self, effect: ev.Effect) -> list[ev.Event]:
        out: list[ev.Event] = self.ctl.handle_effect(effect, self.t)
        self.events += out
        return out

    def run(self, seconds: float, dt: float = 0.01,
            until: Callable[[], bool] | None = None) -> list[ev.Event]:
        """Poll for `seconds`; the inputs for the SECC except measurements."""
        out: list[ev.Event] = []
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + dt)
            out += [e for e in self.ctl.poll(self.t) if not isinstance(e, ev.MeasurementsUpdated)]
            if until is not None and until():
                break
        self.events += out
        return out

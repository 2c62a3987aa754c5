"""A StationPort that records what the MQTT bridge asks of the charger."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from evse._mqtt_api import CommandRejected, ConnectorLimits, ConnectorState, LimitsUpdate
from evse.energy.prices import PriceCurve

RATED = ConnectorLimits(max_charge_power_w=11000.0, max_discharge_power_w=11000.0,
                        max_charge_current_a=32.0, max_discharge_current_a=32.0)


class FakeStation:
    def __init__(self, connectors: Sequence[str] = ("1",), *,
                 control_mode: str | None = "Dynamic") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.states = {c: ConnectorState("charging", RATED, protocol="ISO15118-20 DC_BPT",
                                         control_mode=control_mode, session_id="s1",
                                         soc=50.0, voltage=400.0, current=10.0,
                                         power=4000.0) for c in connectors}
        self.reject: str | None = None  # the next command raises CommandRejected(reject)

    def update(self, connector: str, **changes: Any) -> None:
        self.states[connector] = dataclasses.replace(self.states[connector], **changes)

    def _call(self, *call: Any) -> None:
        if self.reject is not None:
            reason, self.reject = self.reject, None
            raise CommandRejected(reason)
        self.calls.append(call)

    # -- StationPort ---------------------------------------------------------------------
    def connectors(self) -> Sequence[str]:
        return list(self.states)

    def state(self, connector: str) -> ConnectorState:
        return self.states[connector]

    def authorize(self, connector: str, id_token: str, granted: bool) -> None:
        self._call("authorize", connector, id_token, granted)

    def set_setpoint(self, connector: str, watts: float) -> None:
        self._call("setpoint", connector, watts)
        self.update(connector, setpoint_w=watts)

    def set_limits(self, connector: str, limits: LimitsUpdate) -> None:
        self._call("limits", connector, limits)

    def set_prices(self, connector: str, prices: PriceCurve) -> None:
        self._call("prices", connector, prices)

    def stop(self, connector: str) -> None:
        self._call("stop", connector)

    def pause(self, connector: str) -> None:
        self._call("pause", connector)

"""Vehicle-to-home during a grid outage: which EV feeds the house, with what power.

The station (board, or the MQTT `outage` command, or `evse secc --grid-outage` on the SIL)
reports the outage and the house's load; `V2hRunner` turns them into one discharge setpoint
per connector, every control step, with a latched `evse.energy.v2h.V2hController` each:

- only Dynamic-mode BPT sessions can follow a setpoint: the load is shared evenly between
  the connectors that have one (a Scheduled session cannot be steered mid-session; the
  station port caps its charging to zero instead: there is no grid to charge from);
- never more than the connector's discharge limit and the EV's, never below the reserve SOC
  (the policy's, or the EV's MinimumSOC if higher); at the reserve the setpoint is 0 and
  stays 0 (latched) until the SOC is back above it by the hysteresis or the outage ends.

`dt` is the step on the hardware's clock (the SIL runs it faster than real time), so the
controller's last step before the reserve lands on it instead of overshooting.
"""

from __future__ import annotations

from dataclasses import dataclass

from evse.energy.v2h import V2hController, V2hSetpoint, V2hSettings

__all__ = ["V2hRunner"]


@dataclass
class _Entry:
    controller: V2hController
    reserve_announced: bool = False


class V2hRunner:
    def __init__(self, *, reserve_soc: float, discharge_efficiency: float = 1.0,
                 resume_hysteresis_soc: float = 1.0) -> None:
        self.reserve_soc = reserve_soc
        self.discharge_efficiency = discharge_efficiency
        self.resume_hysteresis_soc = resume_hysteresis_soc
        self.active = False
        self.home_load_w = 0.0
        self._entries: dict[str, _Entry] = {}

    def set_outage(self, active: bool, home_load_w: float | None = None) -> bool:
        """Start or end the outage; True when that changed. A new outage starts with fresh
        controllers (no latch from the last one)."""
        if home_load_w is not None:
            if not home_load_w >= 0:
                raise ValueError(f"home_load_w must be >= 0, got {home_load_w!r}")
            self.home_load_w = float(home_load_w)
        changed = active != self.active
        self.active = active
        if changed:
            self._entries.clear()
        return changed

    def forget(self, connector: str) -> None:
        """A new session on the connector: its controller starts unlatched."""
        self._entries.pop(connector, None)

    def step(self, connector: str, *, soc: float, share: int, max_discharge_w: float,
             minimum_soc: float | None = None, capacity_kwh: float | None = None,
             dt: float | None = None) -> tuple[V2hSetpoint, bool]:
        """(setpoint, reserve newly reached) for one connector's control step; `share`: how
        many connectors supply the house now (the load is split evenly)."""
        reserve = max(self.reserve_soc, float(minimum_soc or 0.0))
        settings = V2hSettings(reserve_soc=min(reserve, 100.0),
                               max_discharge_w=max(0.0, max_discharge_w),
                               resume_hysteresis_soc=self.resume_hysteresis_soc,
                               capacity_kwh=capacity_kwh,
                               discharge_efficiency=self.discharge_efficiency)
        entry = self._entries.get(connector)
        if entry is None:
            entry = self._entries[connector] = _Entry(V2hController(settings))
        entry.controller.settings = settings  # limits and SOC bounds move during a session
        load = self.home_load_w / max(1, share)
        result = entry.controller.step(load, min(100.0, max(0.0, soc)),
                                       dt if dt is not None and dt > 0 else None)
        newly = result.reserve_reached and not entry.reserve_announced
        if newly:
            entry.reserve_announced = True
        elif not result.reserve_reached:
            entry.reserve_announced = False
        return result, newly

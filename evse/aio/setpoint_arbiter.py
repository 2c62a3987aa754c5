"""Setpoint arbitration for the station port: which limits apply on a connector, and the
precedence of Dynamic-mode setpoints (applied by `SeccStationPort._control`).

Limits: the rated limits, capped by the aggregator's `limits` commands (`Caps`, None = the
rated value); during a grid outage no charging at all (there is no grid to charge from).

Setpoint, highest precedence first: a grid outage hands the session to the V2H runner
(`evse.aio.v2h_runner`, decided by the caller); else an MQTT setpoint; else a plan re-made
after a mid-session `prices` command; else None: the ScheduleExchange plan, which the SECC
follows by itself. Sign convention (DESIGN 5): negative while the EV discharges.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from evse.protocol.limits import EvseLimits

__all__ = ["Caps", "capped_limits"]


@dataclass
class Caps:
    """The aggregator's caps on one connector (None: the rated value)."""

    max_charge_power_w: float | None = None
    max_discharge_power_w: float | None = None
    max_charge_current_a: float | None = None
    max_discharge_current_a: float | None = None


def capped_limits(rated: EvseLimits, caps: Caps, *, outage: bool) -> EvseLimits:
    """What applies on the connector now (see the module docstring)."""
    r = rated

    def cap(value: float, limit: float | None) -> float:
        return value if limit is None else min(value, limit)

    lim = dataclasses.replace(
        r, max_charge_power=cap(r.max_charge_power, caps.max_charge_power_w),
        max_discharge_power=cap(r.max_discharge_power, caps.max_discharge_power_w),
        max_charge_current=cap(r.max_charge_current, caps.max_charge_current_a),
        max_discharge_current=cap(r.max_discharge_current, caps.max_discharge_current_a))
    if outage:
        lim = dataclasses.replace(lim, max_charge_power=0.0, max_charge_current=0.0,
                                  min_charge_power=0.0, min_charge_current=0.0)
    if lim.min_charge_power > lim.max_charge_power:
        lim = dataclasses.replace(lim, min_charge_power=lim.max_charge_power)
    if lim.min_discharge_power > lim.max_discharge_power:
        lim = dataclasses.replace(lim, min_discharge_power=lim.max_discharge_power)
    return lim

"""The simulated EV (EVCC): a sans-IO ISO 15118-20 state machine, named scenarios, the EV's
battery view and an asyncio runner that speaks SDP + V2GTP over TCP/TLS to any SECC."""

from simulators.ev.battery_link import BatteryLink
from simulators.ev.evcc import (
    Effect,
    Evcc,
    EvState,
    Failed,
    Finished,
    Reconnect,
    SendData,
)
from simulators.ev.report import MessageRecord, SessionReport, TimingViolation
from simulators.ev.scenarios import (
    SCENARIOS,
    BatteryParams,
    ControlMode,
    EnergyService,
    EvTimeouts,
    ScenarioConfig,
    get_scenario,
    scenario_names,
)

__all__ = [
    "SCENARIOS",
    "BatteryLink",
    "BatteryParams",
    "ControlMode",
    "Effect",
    "EnergyService",
    "EvState",
    "EvTimeouts",
    "Evcc",
    "Failed",
    "Finished",
    "MessageRecord",
    "Reconnect",
    "ScenarioConfig",
    "SendData",
    "SessionReport",
    "TimingViolation",
    "get_scenario",
    "scenario_names",
]

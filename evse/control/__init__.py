"""Charger control: SECC effects -> HAL commands, HAL readings -> SECC inputs (sans-IO)."""

from evse.control.controller import (
    ISOLATION_FAULT_OHM_PER_VOLT,
    ISOLATION_WARNING_OHM_PER_VOLT,
    Action,
    ChargerController,
    ControllerConfig,
    ControllerStatus,
    IsolationVerdict,
    check_safe_sequence,
    judge_isolation,
)

__all__ = [
    "ISOLATION_FAULT_OHM_PER_VOLT",
    "ISOLATION_WARNING_OHM_PER_VOLT",
    "Action",
    "ChargerController",
    "ControllerConfig",
    "ControllerStatus",
    "IsolationVerdict",
    "check_safe_sequence",
    "judge_isolation",
]

"""The device-model variables the station really has (OCPP 2.0.1 B06/B07 GetVariables and
SetVariables): each one read from, or written to, the live setting it names. Only the Actual
attribute; components without EVSE or instance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DeviceModel", "Variable"]


@dataclass(slots=True)
class Variable:
    get: Callable[[], str]
    set: Callable[[str], None] | None = None  # None: read-only
    # a value that `set` refuses raises ValueError (answered Rejected)


@dataclass(slots=True)
class DeviceModel:
    variables: dict[tuple[str, str], Variable] = field(default_factory=dict)

    def add(self, component: str, variable: str, var: Variable) -> None:
        self.variables[(component, variable)] = var

    def _find(self, component: str, variable: str) -> tuple[str, Variable | None]:
        if not any(c == component for c, _v in self.variables):
            return "UnknownComponent", None
        var = self.variables.get((component, variable))
        return ("Accepted", var) if var is not None else ("UnknownVariable", None)

    def get(self, component: str, variable: str, attribute: str = "Actual"
            ) -> tuple[str, str | None]:
        """(attributeStatus, value)."""
        status, var = self._find(component, variable)
        if var is None:
            return status, None
        if attribute != "Actual":
            return "NotSupportedAttributeType", None
        return "Accepted", var.get()

    def set(self, component: str, variable: str, value: str, attribute: str = "Actual"
            ) -> str:
        """attributeStatus; the setting is changed only when Accepted."""
        status, var = self._find(component, variable)
        if var is None:
            return status
        if attribute != "Actual":
            return "NotSupportedAttributeType"
        if var.set is None:
            return "Rejected"
        try:
            var.set(value)
        except ValueError:
            return "Rejected"
        return "Accepted"


def positive_int(value: str) -> int:
    n = int(value)  # ValueError for "abc"
    if n <= 0:
        raise ValueError(value)
    return n


def non_negative_int(value: str) -> int:
    n = int(value)
    if n < 0:
        raise ValueError(value)
    return n

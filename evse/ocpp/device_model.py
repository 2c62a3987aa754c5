"""The device-model variables the station really has (OCPP 2.0.1 B06/B07 GetVariables and
SetVariables, B07 GetBaseReport): each one read from, or written to, the live setting it names.
Only the Actual attribute; components without instance, at station level or of one EVSE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DeviceModel", "Variable"]


@dataclass(slots=True)
class Variable:
    get: Callable[[], str]
    set: Callable[[str], None] | None = None  # None: read-only
    # a value that `set` refuses raises ValueError (answered Rejected)
    data_type: str | None = None  # NotifyReport's dataType; None: guessed from the value


@dataclass(slots=True)
class DeviceModel:
    variables: dict[tuple[str, str], Variable] = field(default_factory=dict)
    # the variables of a component of one EVSE: (component, evse id, variable)
    evse_variables: dict[tuple[str, int, str], Variable] = field(default_factory=dict)
    # (component, evse id or None, variable, value) of every Accepted set: to persist it
    on_set: Callable[[str, int | None, str, str], None] | None = None

    def add(self, component: str, variable: str, var: Variable, evse: int | None = None
            ) -> None:
        if evse is None:
            self.variables[(component, variable)] = var
        else:
            self.evse_variables[(component, evse, variable)] = var

    def _find(self, component: str, variable: str, evse: int | None = None
              ) -> tuple[str, Variable | None]:
        if evse is None:
            known = any(c == component for c, _v in self.variables)
            var = self.variables.get((component, variable))
        else:
            known = any(c == component and e == evse for c, e, _v in self.evse_variables)
            var = self.evse_variables.get((component, evse, variable))
        if not known:
            return "UnknownComponent", None
        return ("Accepted", var) if var is not None else ("UnknownVariable", None)

    def entries(self) -> list[tuple[str, int | None, str, Variable]]:
        """Every variable: (component, evse id or None, variable, Variable), sorted."""
        out: list[tuple[str, int | None, str, Variable]] = [
            (c, None, v, var) for (c, v), var in self.variables.items()]
        out += [(c, e, v, var) for (c, e, v), var in self.evse_variables.items()]
        return sorted(out, key=lambda t: (t[0], t[1] or 0, t[2]))

    def get(self, component: str, variable: str, attribute: str = "Actual",
            evse: int | None = None) -> tuple[str, str | None]:
        """(attributeStatus, value)."""
        status, var = self._find(component, variable, evse)
        if var is None:
            return status, None
        if attribute != "Actual":
            return "NotSupportedAttributeType", None
        return "Accepted", var.get()

    def set(self, component: str, variable: str, value: str, attribute: str = "Actual",
            evse: int | None = None) -> str:
        """attributeStatus; the setting is changed only when Accepted."""
        status, var = self._find(component, variable, evse)
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
        if self.on_set is not None:
            self.on_set(component, evse, variable, value)
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


def boolean(value: str) -> bool:
    """An OCPP boolean variable value ("true" / "false", any case)."""
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(value)
    return v == "true"


def data_type_of(var: Variable, value: str) -> str:
    """NotifyReport's dataType: the declared one, else what the value looks like."""
    if var.data_type is not None:
        return var.data_type
    if value in ("true", "false"):
        return "boolean"
    try:
        int(value)
    except ValueError:
        return "MemberList" if "," in value else "string"
    return "integer"

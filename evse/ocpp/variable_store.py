"""SetVariables values that survive a restart (OCPP 2.0.1/2.1 B05): every value the CSMS set
and the station Accepted is kept in SQLite, in the durable queue's file beside availability
and the local list, and applied again at start, before the first BootNotification.

Only the Actual attribute of variables that have a setter (DeviceModel). A stored value
is applied through the same setter and checks as a SetVariables; one the station no longer
accepts (the variable is gone, or its check is stricter now) is dropped. Plain file storage
(no network, no clock).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from evse.ocpp.device_model import DeviceModel

__all__ = ["VariableStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS variables (
    component TEXT NOT NULL,
    evse INTEGER NOT NULL,  -- 0: the component has no EVSE
    variable TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (component, evse, variable)
);
"""


class VariableStore:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an Accepted value is on disk
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def save(self, component: str, evse: int | None, variable: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO variables VALUES (?, ?, ?, ?) ON CONFLICT(component, evse, variable) "
            "DO UPDATE SET value = excluded.value", (component, evse or 0, variable, value))

    def stored(self) -> list[tuple[str, int | None, str, str]]:
        return [(c, e or None, v, val) for c, e, v, val in self._db.execute(
            "SELECT component, evse, variable, value FROM variables ORDER BY rowid")]

    def attach(self, dm: DeviceModel) -> list[tuple[str, int | None, str, str]]:
        """Apply the stored values to `dm`, then keep every value it Accepts from now on.
        Returns the stored values it refused (dropped from the store)."""
        refused = []
        for component, evse, variable, value in self.stored():
            if dm.set(component, variable, value, evse=evse) != "Accepted":
                refused.append((component, evse, variable, value))
                self._db.execute(
                    "DELETE FROM variables WHERE component = ? AND evse = ? AND variable = ?",
                    (component, evse or 0, variable))
        dm.on_set = self.save
        return refused

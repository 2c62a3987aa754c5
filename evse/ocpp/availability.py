"""Operative / Inoperative per EVSE and for the whole station (OCPP 2.0.1/2.1 G03, G04
ChangeAvailability), kept in SQLite so that it survives a restart.

Rules kept:
- the CSMS's wish is stored at once; it takes effect on an EVSE as soon as no transaction
  runs there. Inoperative on an EVSE with a running transaction is answered `Scheduled` and
  applies when that transaction ends [G03]; Operative always applies at once;
- an EVSE is effectively Inoperative when the station or the EVSE is; its connector then
  reports `Unavailable` (a `Faulted` connector stays `Faulted`) and takes no new session;
- an unknown EVSE or connector is `Rejected` and changes nothing.

Plain file storage beside the durable queue (no network, no clock).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["Availability", "STATION"]

STATION = 0  # the scope id of the whole station (ChangeAvailability without evse)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS availability (
    scope INTEGER PRIMARY KEY,  -- 0: the station, else an EVSE id
    operative INTEGER NOT NULL
);
"""


class Availability:
    def __init__(self, path: Path | str, evse_ids: set[int] | None = None) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._operative = {int(s): bool(o) for s, o in self._db.execute(
            "SELECT scope, operative FROM availability")}
        self.evse_ids: set[int] = set(evse_ids or ())

    def close(self) -> None:
        self._db.close()

    def wanted(self, scope: int) -> bool:
        """What the CSMS last asked for (Operative unless it said otherwise)."""
        return self._operative.get(scope, True)

    def operative(self, evse_id: int, in_transaction: bool = False) -> bool:
        """Whether the EVSE takes sessions now: a running transaction keeps it Operative
        until it ends (the change was Scheduled)."""
        return in_transaction or (self.wanted(STATION) and self.wanted(evse_id))

    def change(self, evse_id: int | None, connector_id: int | None, operative: bool,
               busy: set[int], connectors: set[tuple[int, int]]) -> str:
        """ChangeAvailability -> its status (Accepted / Scheduled / Rejected). `busy`: the
        EVSEs with a running transaction; `connectors`: every (evse, connector) there is."""
        scope = STATION if evse_id in (None, 0) else evse_id
        if scope != STATION:
            if evse_id not in self.evse_ids:
                return "Rejected"
            # one connector per EVSE here: the connector level is the EVSE level
            if connector_id is not None and (evse_id, connector_id) not in connectors:
                return "Rejected"
        elif connector_id is not None:
            return "Rejected"  # a connector needs its EVSE
        affected = self.evse_ids if scope == STATION else {scope}
        if self.wanted(scope) != operative:
            self._db.execute("INSERT INTO availability VALUES (?, ?) ON CONFLICT(scope) "
                             "DO UPDATE SET operative = excluded.operative",
                             (scope, int(operative)))
            self._operative[scope] = operative
        if not operative and affected & busy:
            return "Scheduled"
        return "Accepted"

    @staticmethod
    def connector_status(status: str, operative: bool) -> str:
        """What the CSMS is told for a connector whose own state is `status`."""
        if operative or status == "Faulted":
            return status
        return "Unavailable"

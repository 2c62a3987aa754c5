"""The local authorization list (OCPP 2.0.1/2.1 D01 SendLocalList, D02 GetLocalListVersion,
C13/C14 use while authorizing), kept in SQLite.

Rules kept:
- Full replaces the whole list (an empty Full clears it); Differential adds or updates the
  entries that carry an idTokenInfo and removes those that do not;
- a Differential whose versionNumber is not above the list's version is `VersionMismatch`
  [D01.FR.19]; an empty Differential only sets the version [D01.FR.05];
- a request that cannot be applied whole (versionNumber < 1, one token twice, a Full entry
  without idTokenInfo, more entries than `max_entries`) is `Failed` and changes nothing:
  every update is one SQLite transaction;
- idToken is compared case-insensitively with its type (IdTokenType: CaseInsensitiveString);
- GetLocalListVersion: 0 when there is no list.

`lookup` gives the status the list holds for a token (Accepted / Blocked / Expired /
Invalid / ...), `Expired` once its cacheExpiryDateTime has passed, None when not on the list.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["LocalAuthList"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_list (
    token TEXT NOT NULL,  -- casefolded idToken
    type TEXT NOT NULL,
    info TEXT NOT NULL,   -- idTokenInfo, JSON (camelCase)
    PRIMARY KEY (token, type)
);
CREATE TABLE IF NOT EXISTS local_list_version (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    version INTEGER NOT NULL
);
"""


def _key(id_token: dict[str, Any]) -> tuple[str, str]:
    return str(id_token["idToken"]).casefold(), str(id_token["type"])


class LocalAuthList:
    def __init__(self, path: Path | str, max_entries: int = 1000) -> None:
        self.max_entries = max_entries
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def version(self) -> int:
        row = self._db.execute("SELECT version FROM local_list_version").fetchone()
        return int(row[0]) if row else 0

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM local_list").fetchone()[0])

    def update(self, version: int, update_type: str, entries: list[dict[str, Any]]
               ) -> tuple[str, str | None]:
        """SendLocalList (camelCase `localAuthorizationList` entries) -> (status, why)."""
        if update_type not in ("Full", "Differential"):
            return "Failed", f"updateType {update_type!r}"
        if version < 1:  # [D01.FR.18]
            return "Failed", "versionNumber must be > 0"
        if update_type == "Differential" and version <= self.version:  # [D01.FR.19]
            return "VersionMismatch", f"list is at version {self.version}"
        # an empty Differential changes only the version [D01.FR.05]
        keys = [_key(e["idToken"]) for e in entries]
        if len(set(keys)) != len(keys):
            return "Failed", "an idToken appears twice"
        if update_type == "Full" and any("idTokenInfo" not in e for e in entries):
            return "Failed", "a Full update entry without idTokenInfo"
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if update_type == "Full":
                db.execute("DELETE FROM local_list")
            for key, e in zip(keys, entries, strict=True):
                if "idTokenInfo" in e:
                    db.execute("INSERT INTO local_list VALUES (?, ?, ?) ON CONFLICT(token, type)"
                               " DO UPDATE SET info = excluded.info",
                               (*key, json.dumps(e["idTokenInfo"], separators=(",", ":"))))
                else:
                    db.execute("DELETE FROM local_list WHERE token = ? AND type = ?", key)
            if self.__len__() > self.max_entries:
                db.execute("ROLLBACK")
                return "Failed", f"more than {self.max_entries} entries"
            db.execute("INSERT INTO local_list_version VALUES (0, ?) ON CONFLICT(id) "
                       "DO UPDATE SET version = excluded.version", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return "Accepted", None

    def info(self, id_token: dict[str, Any]) -> dict[str, Any] | None:
        row = self._db.execute("SELECT info FROM local_list WHERE token = ? AND type = ?",
                               _key(id_token)).fetchone()
        return json.loads(row[0]) if row else None

    def lookup(self, id_token: dict[str, Any], now: float) -> str | None:
        info = self.info(id_token)
        if info is None:
            return None
        status = str(info.get("status", "Unknown"))
        expiry = info.get("cacheExpiryDateTime")
        if status == "Accepted" and expiry is not None:
            try:
                expired = dt.datetime.fromisoformat(
                    str(expiry).replace("Z", "+00:00")).timestamp() <= now
            except ValueError:
                expired = True  # an expiry we cannot read: fail closed
            if expired:
                return "Expired"
        return status

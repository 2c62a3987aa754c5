"""A durable, ordered queue of CALLs for the CSMS (TransactionEvent above all) in SQLite.

- WAL journal with synchronous=FULL: a committed `put` survives a process kill and a power
  loss (the WAL is fsynced at each commit);
- `put` gives a TransactionEvent its seqNo inside the same SQLite transaction that stores it,
  from a per-transaction counter kept in the same file: a restart never reuses a seqNo;
- `peek` returns the oldest entry and `ack` deletes it only after the CSMS answered, so an
  entry is sent again after a crash between sending and answer (at-least-once on the wire,
  exactly once per seqNo: the CSMS sees the same seqNo and can drop the duplicate).

Plain file storage (no network, no clock): it sits beside the sans-IO mapping; the asyncio
adapter calls it from the event loop (each commit is one fsync, about a millisecond).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DurableQueue", "QueuedCall"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seq_no (
    transaction_id TEXT PRIMARY KEY,
    next INTEGER NOT NULL,
    open INTEGER NOT NULL DEFAULT 1,  -- Started and not yet Ended
    evse_id INTEGER,
    connector_id INTEGER
);
"""


@dataclass(frozen=True, slots=True)
class QueuedCall:
    id: int
    action: str
    payload: dict[str, Any]


class DurableQueue:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def put(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Store a CALL; a TransactionEvent gets the next seqNo of its transaction. Returns
        the payload as stored."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if action == "TransactionEvent":
                tx_id = payload["transactionInfo"]["transactionId"]
                row = db.execute("SELECT next FROM seq_no WHERE transaction_id = ?",
                                 (tx_id,)).fetchone()
                seq = row[0] if row else 0
                evse = payload.get("evse", {})
                db.execute("INSERT INTO seq_no VALUES (?, 1, 1, ?, ?) "
                           "ON CONFLICT(transaction_id) DO UPDATE SET next = next + 1",
                           (tx_id, evse.get("id"), evse.get("connectorId")))
                if payload["eventType"] == "Ended":
                    db.execute("UPDATE seq_no SET open = 0 WHERE transaction_id = ?", (tx_id,))
                payload = {**payload, "seqNo": seq}
            db.execute("INSERT INTO calls (action, payload) VALUES (?, ?)",
                       (action, json.dumps(payload, separators=(",", ":"))))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return payload

    def open_transactions(self) -> list[tuple[str, int | None, int | None]]:
        """(transaction id, EVSE id, connector id) of every transaction with a stored Started
        and no stored Ended: after a restart these were cut off by the crash."""
        return [(r[0], r[1], r[2]) for r in self._db.execute(
            "SELECT transaction_id, evse_id, connector_id FROM seq_no WHERE open = 1 "
            "ORDER BY rowid")]

    def peek(self) -> QueuedCall | None:
        row = self._db.execute(
            "SELECT id, action, payload FROM calls ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return QueuedCall(row[0], row[1], json.loads(row[2]))

    def ack(self, call_id: int) -> None:
        self._db.execute("DELETE FROM calls WHERE id = ?", (call_id,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

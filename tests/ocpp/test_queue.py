"""The durable TransactionEvent queue (evse/ocpp/queue.py): order, seqNo per transaction, and
what survives a SIGKILL of the writing process (every committed event, no seqNo reused)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from evse.ocpp.queue import DurableQueue
from tests.conftest import ROOT


def tx_event(tx_id: str, event_type: str = "Updated") -> dict[str, Any]:
    return {"eventType": event_type, "triggerReason": "MeterValuePeriodic",
            "timestamp": "2026-01-01T00:00:00.000Z", "transactionInfo": {"transactionId": tx_id}}


def test_order_seqno_per_transaction_and_ack(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q.db")
    assert q.put("TransactionEvent", tx_event("a", "Started"))["seqNo"] == 0
    assert q.put("TransactionEvent", tx_event("b", "Started"))["seqNo"] == 0
    assert q.put("TransactionEvent", tx_event("a"))["seqNo"] == 1
    q.put("SecurityEventNotification", {"type": "TamperDetectionActivated"})  # no seqNo
    got = []
    while (item := q.peek()) is not None:
        got.append((item.action, item.payload.get("transactionInfo", {}).get("transactionId"),
                    item.payload.get("seqNo")))
        assert q.peek() == item  # not gone until acknowledged
        q.ack(item.id)
    assert got == [("TransactionEvent", "a", 0), ("TransactionEvent", "b", 0),
                   ("TransactionEvent", "a", 1), ("SecurityEventNotification", None, None)]
    assert len(q) == 0
    # the counter outlives the entries: acknowledged events never give their seqNo back
    assert q.put("TransactionEvent", tx_event("a", "Ended"))["seqNo"] == 2


def test_reopened_queue_keeps_entries_and_counters(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q.db")
    for _ in range(3):
        q.put("TransactionEvent", tx_event("a"))
    item = q.peek()
    assert item is not None
    q.ack(item.id)
    q.close()
    q = DurableQueue(tmp_path / "q.db")
    assert len(q) == 2
    assert [q.peek().payload["seqNo"]] == [1]  # type: ignore[union-attr]
    assert q.put("TransactionEvent", tx_event("a"))["seqNo"] == 3
    assert q._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert q._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync per commit


WRITER = textwrap.dedent("""
    import sys
    from evse.ocpp.queue import DurableQueue
    q = DurableQueue(sys.argv[1])
    while True:
        p = q.put("TransactionEvent", {"eventType": "Updated", "triggerReason": "Trigger",
                  "timestamp": "t", "transactionInfo": {"transactionId": "tx"}})
        print(p["seqNo"], flush=True)  # printed only after the commit returned
""")


def test_sigkill_mid_write_loses_no_committed_event_and_reuses_no_seqno(
        tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    confirmed = []
    for line in proc.stdout:
        confirmed.append(int(line))
        if len(confirmed) == 200:
            break
    os.kill(proc.pid, signal.SIGKILL)  # mid-loop: perhaps inside a commit
    proc.wait(timeout=30)
    proc.stdout.close()
    q = DurableQueue(db)
    stored = []
    while (item := q.peek()) is not None:
        stored.append(item.payload["seqNo"])
        q.ack(item.id)
    # every confirmed event is there, in order, each seqNo once; perhaps a few more that were
    # committed after the last line we read
    assert stored[:len(confirmed)] == confirmed == list(range(200))
    assert stored == list(range(len(stored)))
    nxt = q.put("TransactionEvent", {"eventType": "Ended", "triggerReason": "AbnormalCondition",
                                     "timestamp": "t", "transactionInfo": {"transactionId": "tx"}})
    assert nxt["seqNo"] == len(stored)
    json.dumps(nxt)


def test_open_transactions_are_those_started_and_not_ended(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q.db")
    q.put("TransactionEvent", {**tx_event("a", "Started"), "evse": {"id": 2, "connectorId": 1}})
    q.put("TransactionEvent", tx_event("b", "Started"))
    q.put("TransactionEvent", tx_event("a"))
    q.put("TransactionEvent", tx_event("b", "Ended"))
    q.close()
    assert DurableQueue(tmp_path / "q.db").open_transactions() == [("a", 2, 1)]

"""The station process killed mid-transaction (SIGKILL) while the CSMS is away, and restarted:
the durable queue is replayed in order, nothing that was stored is lost, no seqNo is reused,
and the cut-off transaction is ended (PowerLoss). Real WebSockets, real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from simulators.csms import CsmsSimulator
from tests.conftest import ROOT

STATION = "CS1"


async def _spawn(url: str, queue: Path, mode: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.aio.ocpp_station_proc", url, str(queue), mode,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


async def _lines(proc: asyncio.subprocess.Process, n: int, out: list[str]) -> None:
    assert proc.stdout is not None
    while len(out) < n:
        line = await proc.stdout.readline()
        assert line, "the station process ended"
        out.append(line.decode().strip())


async def _until(pred: object, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_killed_station_replays_its_queue_and_reuses_no_seqno(tmp_path: Path) -> None:
    csms = CsmsSimulator()
    await csms.start()
    queue = tmp_path / "ocpp.db"

    def seqs() -> list[int]:
        return [e["seq_no"] for e in csms.calls(STATION, "TransactionEvent")]

    proc = await _spawn(csms.url, queue, "run")
    stored: list[str] = []
    try:
        await asyncio.wait_for(_lines(proc, 10, stored), 60)
        await _until(lambda: len(seqs()) >= 5)  # online for a while ...
        await csms.stop()  # ... then the CSMS goes away
        n = len(stored)
        await asyncio.wait_for(_lines(proc, n + 15, stored), 60)  # queued offline
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    confirmed = [int(s.split()[1]) for s in stored]
    assert confirmed == list(range(len(confirmed)))
    delivered_before = seqs()

    proc = await _spawn(csms.url, queue, "recover")
    try:
        ended: list[str] = []
        await asyncio.wait_for(_lines(proc, 1, ended), 60)
        ended_seq = int(ended[0].split()[1])
        await csms.start()  # the CSMS comes back
        await _until(lambda: ended_seq in seqs())
    finally:
        proc.kill()
        await proc.wait()
        await csms.stop()
    events = csms.calls(STATION, "TransactionEvent")
    got = [e["seq_no"] for e in events]
    # in order; a duplicate can only be an event in flight when the CSMS went away, re-sent
    # with the same seqNo (the CSMS drops it by seqNo)
    unique = [s for i, s in enumerate(got) if s not in got[:i]]
    assert len(got) - len(unique) <= 1, got
    assert unique == list(range(ended_seq + 1)), got
    # every event the killed process had stored arrived; the Ended after the restart took the
    # next seqNo (none reused, perhaps a few committed after the last line we read)
    assert set(confirmed) <= set(unique) and ended_seq >= len(confirmed)
    assert len(delivered_before) < len(confirmed)  # some really were replayed from disk
    last = events[-1]
    assert last["event_type"] == "Ended"
    assert last["transaction_info"]["stopped_reason"] == "PowerLoss"
    assert last["offline"] is True
    by_seq = {e["seq_no"]: e for e in events}
    assert all(by_seq[s].get("offline") for s in confirmed[-5:])  # stored while offline

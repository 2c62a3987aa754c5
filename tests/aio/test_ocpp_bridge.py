"""The session-event -> OCPP mapping (evse/aio/ocpp_events.py) event by event, on a client that
is not connected: what lands in the durable queue, in order, with which trigger reasons."""

from __future__ import annotations

from pathlib import Path

from evse import events as se
from evse.aio.ocpp_client import OcppClient
from evse.aio.ocpp_events import OcppEventBridge
from evse.config import OcppConfig
from evse.ocpp.queue import DurableQueue
from evse.ocpp.station import OcppStation


def test_a_session_with_an_emergency_stop(tmp_path: Path) -> None:
    st = OcppStation(vendor="EvseStack", model="SIL")
    st.add_connector(1, 1)
    client = OcppClient(OcppConfig(url="ws://127.0.0.1:9", station_id="CS1", password="p"),
                        st, queue=DurableQueue(tmp_path / "q.db"))
    bridge = OcppEventBridge(client, lambda: None, {"1": 1})  # type: ignore[arg-type,return-value]
    sid = "AB12"
    for event in [
        se.SessionStarted("1", 1.0, sid, "urn:iso:std:iso:15118:-20:DC", "EVCC1"),
        se.AuthorizationRequested("1", 1.1, sid, "PnC", "EVCC1", emaid="DEABCC00000001"),
        se.AuthorizationDecided("1", 1.2, sid, True),
        se.Measurement("1", 2.0, sid, 400.0, -20.0, -8000.0, 100.0, 30.0),
        se.Fault("1", 3.0, sid, "emergency stop"),
        se.SessionEnded("1", 3.1, sid, "emergency stop", failed=True, paused=False,
                        summary=None),
        se.SessionStarted("2", 4.0, "OTHER", "x", "y"),  # not an OCPP EVSE: ignored
    ]:
        bridge.handle(event)
    sent = []
    while (item := client.queue.peek()) is not None:
        sent.append(item)
        client.queue.ack(item.id)
    assert [(i.action, i.payload.get("eventType"), i.payload.get("triggerReason"),
             i.payload.get("seqNo")) for i in sent] == [
        ("TransactionEvent", "Started", "EVDetected", 0),
        ("TransactionEvent", "Updated", "Authorized", 1),
        ("TransactionEvent", "Updated", "AbnormalCondition", 2),
        ("SecurityEventNotification", None, None, None),
        ("TransactionEvent", "Ended", "AbnormalCondition", 3),
    ]
    assert sent[1].payload["idToken"] == {"idToken": "DEABCC00000001", "type": "eMAID"}
    assert sent[3].payload["type"] == "EmergencyStop"
    assert all(i.payload.get("offline") for i in sent if i.action == "TransactionEvent")
    # the last reading before the fault is in the abnormal-condition update
    values = {v["measurand"]: v["value"] for v in sent[2].payload["meterValue"][0]["sampledValue"]}
    assert values["Power.Active.Export"] == 8000.0
    assert values["Energy.Active.Export.Register"] == 30.0
    assert sent[4].payload["transactionInfo"]["stoppedReason"] == "Other"

"""OCPP 2.0.1 / 2.1 charging-station side, sans-IO: what to send to the CSMS and when.

Time enters as `now` (seconds, Unix time); every message leaves as a returned `SendCall`.
The asyncio adapter (WebSocket, reconnect, the `ocpp` library's ChargePoint) is
`evse.aio.ocpp_client`; the durable transaction queue is `evse.ocpp.queue`.
"""

from evse.ocpp.station import Backoff, OcppStation, SendCall
from evse.ocpp.transactions import MeterSample, TransactionTracker

__all__ = ["Backoff", "MeterSample", "OcppStation", "SendCall", "TransactionTracker"]

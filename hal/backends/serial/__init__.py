"""`serial` backend: the board's safety MCU over a COBS + CRC-32 framed serial link.

The wire protocol is specified in docs/serial_protocol.md; `protocol` packs its messages,
`framing` its frames, `link` runs the host's state machine and `backend` maps it onto
`hal.interfaces.Board`.
"""

from hal.backends.serial.backend import LinkLossNotAcknowledged, SerialBackend, SerialBoard
from hal.backends.serial.link import (
    LinkEvent,
    LinkState,
    LinkStats,
    PySerialTransport,
    SerialLink,
    Transport,
)

__all__ = [
    "LinkEvent",
    "LinkLossNotAcknowledged",
    "LinkState",
    "LinkStats",
    "PySerialTransport",
    "SerialBackend",
    "SerialBoard",
    "SerialLink",
    "Transport",
]

"""Whatever arrives on the serial line or the CAN bus, the backends never raise."""

from __future__ import annotations

import can
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.backends.can import CanPowerSupply
from hal.backends.serial import SerialLink
from hal.backends.serial.framing import encode_frame
from hal.backends.serial.protocol import MsgType, pack_body


class FakeTransport:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.written = bytearray()

    def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


# Valid frames with any type and payload (good CRC), mixed with raw noise.
TYPES = st.sampled_from([t.value for t in MsgType] + [0x00, 0x7E, 0xFF])
FRAMES = st.builds(
    lambda t, seq, payload: b"\x00" + encode_frame(pack_body(t, seq, payload)),
    TYPES,
    st.integers(0, 0xFFFF),
    st.binary(max_size=40),
)
CHUNKS = st.lists(st.one_of(FRAMES, st.binary(max_size=64)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(CHUNKS)
def test_serial_link_survives_any_input(chunks: list[bytes]) -> None:
    transport = FakeTransport(chunks)
    link = SerialLink(transport)
    t = 0.0
    for _ in range(len(chunks) + 2):
        t += 0.05
        link.poll(t)  # must not raise
    assert link.stats.framing.bytes_received == sum(len(c) for c in chunks)


CAN_MESSAGES = st.builds(
    lambda ident, data, ext: can.Message(
        arbitration_id=ident if ext else ident & 0x7FF, data=data, is_extended_id=ext
    ),
    st.one_of(
        st.integers(0, (1 << 29) - 1),
        # replies from modules 0..3 to the controller, any command and error code
        st.builds(
            lambda err, cmd, src: err << 26 | 0x0A << 22 | cmd << 16 | 0xF0 << 8 | src,
            st.integers(0, 7),
            st.integers(0, 63),
            st.integers(0, 3),
        ),
    ),
    st.binary(max_size=8),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(CAN_MESSAGES, max_size=30))
def test_can_supply_survives_any_frame(messages: list[can.Message]) -> None:
    bus = can.Bus(interface="virtual", channel="fuzz-can", receive_own_messages=False)
    peer = can.Bus(interface="virtual", channel="fuzz-can")
    try:
        psu = CanPowerSupply(bus, (0, 1, 2, 3))
        for msg in messages:
            peer.send(msg)
        psu.poll(0.0)  # must not raise
        psu.poll(0.2)
        psu.measurement()
        assert psu.capabilities.max_voltage > 0
    finally:
        bus.shutdown()
        peer.shutdown()

"""SDP server: answers EVs' discovery datagrams on UDP 15118 (ff02::1 on the interface)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

from evse.protocol.sdp import SDP_MULTICAST_ADDRESS, SDP_PORT, SdpServerConfig, answer

log = logging.getLogger(__name__)


class _SdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, config: SdpServerConfig) -> None:
        self.config = config
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0
        self.ignored = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = answer(data, self.config)
        if reply is None:
            self.ignored += 1
            log.debug("SDP: ignored %d bytes from %s", len(data), addr)
            return
        self.answered += 1
        assert self.transport is not None
        self.transport.sendto(reply, addr)  # to the requester's address and port


def _socket(interface: str | None, port: int, bind: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    scope = socket.if_nametoindex(interface) if interface else 0
    if interface:
        # Receive the EV's multicast to ff02::1 on this interface only.
        mreq = SDP_MULTICAST_ADDRESS.packed + struct.pack("@I", scope)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
    sock.bind((bind, port, 0, scope if bind.startswith("fe80") else 0))
    sock.setblocking(False)
    return sock


async def start_sdp_server(config: SdpServerConfig, *, interface: str | None = None,
                           port: int = SDP_PORT, bind: str = "::"
                           ) -> tuple[asyncio.DatagramTransport, _SdpProtocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _SdpProtocol(config), sock=_socket(interface, port, bind))
    return transport, protocol

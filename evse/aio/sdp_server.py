"""SDP server: answers EVs' discovery datagrams on UDP 15118 (ff02::1 on the interface).

The socket is IPv6-only (`IPV6_V6ONLY`: SDP is IPv6, an IPv4 datagram is never answered)
and bound to the charging link only, never to every interface of the board:

- with an `interface` and no `bind` address: bound to ff02::1 with the interface's scope,
  the group joined on that interface only, and `SO_BINDTODEVICE` where the kernel allows it
  (Linux, CAP_NET_RAW; without it the scoped multicast bind already keeps other links out);
- with a `bind` address (tests, a fixed unicast address): bound to exactly that address
  (with the interface's scope for a link-local one); the wildcard "::" is accepted only
  together with an interface, which `SO_BINDTODEVICE` then restricts it to.
"""

from __future__ import annotations

import asyncio
import ipaddress
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


def _bind_to_device(sock: socket.socket, interface: str) -> bool:
    """`SO_BINDTODEVICE` when the platform has it and we may use it; False otherwise."""
    option = getattr(socket, "SO_BINDTODEVICE", None)
    if option is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, interface.encode())
    except OSError as exc:  # EPERM without CAP_NET_RAW: the scoped bind still holds
        log.debug("SDP: SO_BINDTODEVICE %s not applied: %s", interface, exc)
        return False
    return True


def sdp_socket(interface: str | None, port: int, bind: str | None) -> socket.socket:
    """The SDP server's UDP socket, IPv6 only, bound as the module doc says."""
    if bind is None and interface is None:
        raise ValueError("SDP needs the charging interface or an address to bind to")
    address = ipaddress.IPv6Address(bind.split("%", 1)[0]) if bind is not None else None
    if address is not None and address.ipv4_mapped is not None:
        raise ValueError(f"SDP is IPv6 only: {bind} is an IPv4 address")
    if address is not None and address.is_unspecified and interface is None:
        raise ValueError("SDP on '::' would answer on every interface: give the interface")
    scope = socket.if_nametoindex(interface) if interface else 0
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if interface:
            _bind_to_device(sock, interface)
            if address is None or address.is_multicast or address.is_unspecified:
                # Receive the EV's multicast to ff02::1 on this interface only.
                mreq = SDP_MULTICAST_ADDRESS.packed + struct.pack("@I", scope)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
        if address is None:
            address = SDP_MULTICAST_ADDRESS
        scoped = address.is_link_local or address.is_multicast
        sock.bind((str(address), port, 0, scope if scoped else 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def start_sdp_server(config: SdpServerConfig, *, interface: str | None = None,
                           port: int = SDP_PORT, bind: str | None = None
                           ) -> tuple[asyncio.DatagramTransport, _SdpProtocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _SdpProtocol(config), sock=sdp_socket(interface, port, bind))
    return transport, protocol

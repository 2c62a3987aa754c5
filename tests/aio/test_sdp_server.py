"""The SDP server over real UDP sockets on the IPv6 loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from evse.aio.sdp_server import start_sdp_server
from evse.protocol.sdp import SdpRequest, SdpServerConfig, Security, parse_response


async def _ask(port: int, datagram: bytes, timeout: float = 0.5) -> bytes | None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("::1", 0))
    try:
        await loop.sock_sendto(sock, datagram, ("::1", port))
        try:
            return await asyncio.wait_for(loop.sock_recv(sock, 1024), timeout)
        except TimeoutError:
            return None
    finally:
        sock.close()


async def test_answers_tls_and_plain_requests_with_the_right_port() -> None:
    config = SdpServerConfig(ipaddress.IPv6Address("::1"), 15000, tls_available=True,
                             plain_allowed=True, plain_port=15001)
    transport, proto = await start_sdp_server(config, port=0, bind="::1")
    port = transport.get_extra_info("sockname")[1]
    try:
        tls = parse_response(await _ask(port, SdpRequest(Security.TLS).encode()) or b"")
        assert (tls.port, tls.security) == (15000, Security.TLS)
        plain = parse_response(await _ask(port, SdpRequest(Security.NONE).encode()) or b"")
        assert (plain.port, plain.security) == (15001, Security.NONE)
        assert plain.address == ipaddress.IPv6Address("::1")
        assert proto.answered == 2
    finally:
        transport.close()


async def test_garbage_is_ignored_and_the_server_keeps_serving() -> None:
    config = SdpServerConfig(ipaddress.IPv6Address("::1"), 15000)
    transport, proto = await start_sdp_server(config, port=0, bind="::1")
    port = transport.get_extra_info("sockname")[1]
    try:
        assert await _ask(port, b"\x01\xfe\x90\x00\x00\x00\x00\x05hello", 0.2) is None
        assert await _ask(port, b"", 0.2) is None
        reply = await _ask(port, SdpRequest(Security.TLS).encode())
        assert reply is not None and parse_response(reply).security is Security.TLS
        assert proto.ignored == 2
    finally:
        transport.close()

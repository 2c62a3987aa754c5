"""The SDP server over real UDP sockets: IPv6 loopback, and ff02::1 on a real interface."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

import pytest

from evse.aio.netif import IF_INET6, parse_if_inet6
from evse.aio.sdp_server import sdp_socket, start_sdp_server
from evse.aio.secc_server import SeccServer, Station
from evse.protocol.sdp import SdpRequest, SdpServerConfig, Security, parse_response
from hal.backends.sim import SimBackend
from tests.aio.helpers import secc_config


async def _ask(port: int, datagram: bytes, timeout: float = 0.5, *, host: str = "::1",
               scope: int = 0) -> bytes | None:
    loop = asyncio.get_running_loop()
    ipv4 = ":" not in host
    sock = socket.socket(socket.AF_INET if ipv4 else socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if scope:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
    sock.bind(("127.0.0.1", 0) if ipv4 else ("::", 0) if scope else ("::1", 0))
    try:
        target: tuple[str, int] | tuple[str, int, int, int] = (
            (host, port) if ipv4 else (host, port, 0, scope))
        await loop.sock_sendto(sock, datagram, target)
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


async def test_ipv6_only_on_the_listening_address_never_ipv4() -> None:
    """SDP of a server on ::1 answers ::1 and never an IPv4 request (no dual-stack '::')."""
    station = Station.from_backends([SimBackend()])
    server = SeccServer(secc_config(), station, address="::1", port=0, sdp_port=0)
    async with server:
        port = server.sdp_port
        assert port
        request = SdpRequest(Security.NONE).encode()
        assert await _ask(port, request, 0.3, host="127.0.0.1") is None
        reply = await _ask(port, request)
        assert reply is not None and parse_response(reply).port == server.port


def _multicast_interface() -> tuple[str, int] | None:
    """A non-loopback interface with a usable IPv6 link-local address (eth0 in CI)."""
    try:
        text = Path(IF_INET6).read_text()
    except OSError:
        return None
    for name in sorted({line.split()[5] for line in text.splitlines() if len(line.split()) == 6}):
        if name != "lo" and parse_if_inet6(text, name):
            return name, socket.if_nametoindex(name)
    return None


async def test_on_an_interface_only_its_ff02_1_multicast_is_answered() -> None:
    found = _multicast_interface()
    if found is None:
        pytest.skip("no interface with an IPv6 link-local address")
    name, scope = found
    config = SdpServerConfig(ipaddress.IPv6Address("fe80::1"), 15000)
    try:
        transport, proto = await start_sdp_server(config, interface=name, port=0)
    except OSError as exc:  # no multicast on this interface (a container without it)
        pytest.skip(f"cannot join ff02::1 on {name}: {exc}")
    port = transport.get_extra_info("sockname")[1]
    request = SdpRequest(Security.TLS).encode()
    try:
        assert await _ask(port, request, 0.3) is None  # unicast on another link (lo)
        assert await _ask(port, request, 0.3, host="127.0.0.1") is None  # IPv4
        reply = await _ask(port, request, 1.0, host="ff02::1", scope=scope)
        assert reply is not None and parse_response(reply).port == 15000
        assert proto.answered == 1
    finally:
        transport.close()


@pytest.mark.parametrize("bind", ["::", "::ffff:127.0.0.1"])
def test_refuses_to_bind_every_interface_or_ipv4(bind: str) -> None:
    with pytest.raises(ValueError):
        sdp_socket(None, 0, bind).close()

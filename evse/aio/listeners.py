"""One link per connector: listeners and SDP per modem interface, connections kept to the
connector of the interface they arrived on (docs/link.md, "One link per connector").

When connectors are bound to interfaces (`Connector.interface`, from `[[connectors]]
interface`), `SeccServer.start` opens, per interface, the TCP/TLS listeners on that
interface's IPv6 link-local address with its scope id and an SDP server on ff02::1 of that
interface only, announcing that address and those ports. A connection accepted there carries
the listener's name ("TLS@plc0"), and `connector_for_listener` gives it only that interface's
connector, and only once the link allows a session (SLAC matched): idle sockets on one
connector's link count against that listener's admission bounds and can never take or block
another connector. A listener without an interface ("TLS") serves the connectors without one.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from evse.aio.netif import link_local_address, scope_id

if TYPE_CHECKING:
    from evse.aio.secc_server import Connector, Station

log = logging.getLogger("evse.secc")

OpenSocket = Callable[[str, int, int], socket.socket]


def link_interfaces(station: Station) -> list[str]:
    """The connectors' modem interfaces, in connector order (each at most once)."""
    out: list[str] = []
    for c in station.connectors:
        name = getattr(c, "interface", None)
        if name and name not in out:
            out.append(name)
    return out


def link_hosts(station: Station) -> str:
    """Where the per-link listeners are, for logs: "fe80::1%plc1, fe80::2%plc2"."""
    return ", ".join(f"{link_local_address(i)}%{i}" for i in link_interfaces(station))


def listener_name(kind: str, interface: str | None) -> str:
    return kind if interface is None else f"{kind}@{interface}"


def ticket_listener(kind: str) -> str:
    """The admission ticket's listener name: "tls@plc0" -> "TLS@plc0", "tls" -> "TLS"."""
    k, _, interface = kind.partition("@")
    return listener_name(k.upper(), interface or None)


def listener_interface(listener: str | None) -> str | None:
    """"TLS@plc0" -> "plc0"; "TLS" (the shared listener) -> None."""
    if listener is None or "@" not in listener:
        return None
    return listener.split("@", 1)[1]


def listener_kind(listener: str) -> str:
    return listener.split("@", 1)[0].lower()


def connector_for_listener(station: Station, listener: str | None) -> list[Connector]:
    """The connectors a connection accepted on `listener` may hold: the connector(s) of its
    interface (without an interface: those without one) whose link allows a session now."""
    interface = listener_interface(listener)
    out = []
    for c in station.connectors:
        if getattr(c, "interface", None) != interface:
            continue
        link = getattr(c, "link", None)
        if link is not None and not link.session_allowed:
            continue  # no SLAC match on this link (yet): no V2G session
        out.append(c)
    return out


async def start_link_listeners(station: Station, open_socket: OpenSocket, *,
                               port: int | None, tls: bool, tls_port: int,
                               sdp_port: int | None) -> tuple[list[tuple[str, socket.socket]],
                                                              list[Any]]:
    """Per interface: TCP/TLS listeners on its link-local address (scope id) and SDP on
    ff02::1 of that interface. Returns (listeners as (name, socket), SDP transports)."""
    from evse.aio.sdp_server import start_sdp_server
    from evse.protocol.sdp import SdpServerConfig

    servers: list[tuple[str, socket.socket]] = []
    sdps: list[Any] = []
    try:
        for interface in link_interfaces(station):
            address = link_local_address(interface)
            scope = scope_id(interface)
            host = f"{address}%{interface}"
            ports: dict[str, int] = {}
            for kind, wanted in (("tcp", port), ("tls", tls_port if tls else None)):
                if wanted is None:
                    continue
                sock = open_socket(host, wanted, scope)
                servers.append((listener_name(kind, interface), sock))
                ports[kind] = sock.getsockname()[1]
            if sdp_port is not None:
                primary = ports.get("tls", ports.get("tcp"))
                assert primary is not None
                config = SdpServerConfig(ipaddress.IPv6Address(address), primary,
                                         tls_available="tls" in ports,
                                         plain_allowed="tcp" in ports,
                                         plain_port=ports.get("tcp"))
                transport, _ = await start_sdp_server(config, interface=interface,
                                                      port=sdp_port)
                sdps.append(transport)
            log.info("link %s: listening on %s (%s), SDP %s", interface, host,
                     ", ".join(f"{k} port {p}" for k, p in ports.items()),
                     "on" if sdp_port is not None else "off")
    except BaseException:
        for _, sock in servers:
            sock.close()
        for transport in sdps:
            transport.close()
        raise
    return servers, sdps


def holders_on(connectors: Sequence[Connector]) -> set[str]:
    """Connector ids, for the eviction of a stale connection on the same link only."""
    return {c.id for c in connectors}

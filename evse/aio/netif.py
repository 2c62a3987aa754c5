"""Network interface helpers: the IPv6 link-local address an SECC listens on.

ISO 15118 runs over the PLC modem's interface with IPv6 link-local addresses (fe80::/10),
which only mean something together with the interface's scope id. Python has no portable
call for "the addresses of interface X"; on Linux /proc/net/if_inet6 lists them.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

IF_INET6 = Path("/proc/net/if_inet6")
_SCOPE_LINK = 0x20
_IFA_F_TENTATIVE = 0x40
_IFA_F_DADFAILED = 0x08


class InterfaceError(OSError):
    """The interface does not exist or has no usable IPv6 link-local address."""


def parse_if_inet6(text: str, interface: str) -> list[ipaddress.IPv6Address]:
    """Link-local addresses of `interface` in /proc/net/if_inet6 format, usable ones first.

    Each line: address (32 hex digits), ifindex, prefix length, scope, flags, name (hex
    numbers). Tentative (DAD not finished) and DAD-failed addresses come last.
    """
    good: list[ipaddress.IPv6Address] = []
    tentative: list[ipaddress.IPv6Address] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6 or parts[5] != interface:
            continue
        try:
            address = ipaddress.IPv6Address(bytes.fromhex(parts[0]))
            scope, flags = int(parts[3], 16), int(parts[4], 16)
        except ValueError:
            continue
        if scope != _SCOPE_LINK or not address.is_link_local:
            continue
        if flags & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED):
            tentative.append(address)
        else:
            good.append(address)
    return good + tentative


def scope_id(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except OSError as exc:
        raise InterfaceError(f"no network interface {interface!r}") from exc


def link_local_address(interface: str, *, proc_file: Path = IF_INET6) -> ipaddress.IPv6Address:
    """The interface's IPv6 link-local address (raises `InterfaceError` if it has none)."""
    scope_id(interface)
    try:
        text = proc_file.read_text()
    except OSError as exc:
        raise InterfaceError(f"cannot list IPv6 addresses ({proc_file}: {exc})") from exc
    found = parse_if_inet6(text, interface)
    if not found:
        raise InterfaceError(f"interface {interface!r} has no IPv6 link-local address")
    return found[0]

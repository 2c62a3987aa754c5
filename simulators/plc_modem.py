"""A simulated charger-side PLC modem (QCA7000-class) for SIL runs.

It does what the real modem does for the charger host during SLAC:

- answers the host's CM_SET_KEY.REQ (sent to the QCA local address 00:b0:52:00:00:01 or to
  the modem's own MAC) with CM_SET_KEY.CNF, and remembers the NMK/NID (its "network");
- for every CM_MNBC_SOUND.IND it sees from a car, sends the host a CM_ATTEN_PROFILE.IND with
  the attenuation of that car's signal in 58 groups (`attenuation(car_mac)`: by default a
  car on our own cable, about 12 dB; tests give cars next door a higher value).

Everything else (the car's own key requests, SLAC between the host and the car) it ignores.
`PlcModemSim.handle(frame)` is pure; `SimulatedModemTransport(wire, modem)` puts it between
the charger's SLAC link and its wire (a raw socket on the charger's interface, or an
in-process port), as the real modem sits between the host and the PLC medium.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from evse.aio.slac_link import FrameTransport
from evse.link import slac_messages as m
from evse.link.timing import ATTEN_GROUPS

SIM_MODEM_MAC = bytes.fromhex("00b052000002")


def on_cable(_car: bytes) -> tuple[int, ...]:
    """A car on our own cable: low attenuation with a little ripple across the band."""
    return tuple(12 + (i % 5) for i in range(ATTEN_GROUPS))


def next_door(_car: bytes) -> tuple[int, ...]:
    """A car on the next connector, heard only by crosstalk."""
    return tuple(45 + (i % 7) for i in range(ATTEN_GROUPS))


@dataclass
class PlcModemSim:
    host_mac: bytes
    mac: bytes = SIM_MODEM_MAC
    attenuation: Callable[[bytes], tuple[int, ...]] = on_cable
    nmk: bytes | None = None
    nid: bytes | None = None
    key_requests: int = 0
    profiles_sent: int = 0
    nonce: bytes = b"\x5a\x5a\x5a\x5a"
    ignored: list[int] = field(default_factory=list)

    def handle(self, data: bytes) -> list[bytes]:
        frame = m.decode_frame(data)
        if frame is None or frame.src == self.mac:
            return []
        msg = frame.message
        if isinstance(msg, m.SetKeyReq):
            if frame.src != self.host_mac or frame.dst not in (m.QCA_LOCAL_MAC, self.mac):
                return []  # a car's key request to its own modem
            self.key_requests += 1
            self.nmk, self.nid = msg.new_key, msg.nid
            cnf = m.SetKeyCnf(result=0, my_nonce=self.nonce, your_nonce=msg.my_nonce,
                              pid=msg.pid, prn=msg.prn, pmn=msg.pmn, cco_capability=0)
            return [m.encode_frame(self.host_mac, self.mac, cnf)]
        if isinstance(msg, m.MnbcSoundInd) and frame.src != self.host_mac:
            self.profiles_sent += 1
            profile = m.AttenProfileInd(frame.src, self.attenuation(frame.src))
            return [m.encode_frame(self.host_mac, self.mac, profile)]
        return []


class SimulatedModemTransport:
    """The charger host's frame transport with the simulated modem in between, as on a real
    board (host NIC - modem - PLC medium): frames the host addresses to the modem (QCA local
    address or its MAC) never reach the wire, the modem answers them; frames from the wire
    reach the host, and the modem's attenuation profiles of the car's sounds follow them."""

    def __init__(self, wire: FrameTransport, modem: PlcModemSim) -> None:
        self.wire = wire
        self.modem = modem
        self.mac = wire.mac
        self._local: asyncio.Queue[bytes] = asyncio.Queue()

    def send(self, frame: bytes) -> None:
        if frame[0:6] in (m.QCA_LOCAL_MAC, self.modem.mac):
            for reply in self.modem.handle(frame):
                self._local.put_nowait(reply)
            return
        self.wire.send(frame)

    async def receive(self) -> bytes:
        if not self._local.empty():
            return self._local.get_nowait()
        local = asyncio.ensure_future(self._local.get())
        remote = asyncio.ensure_future(self.wire.receive())
        try:
            done, _ = await asyncio.wait({local, remote}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (local, remote):
                if not task.done():
                    task.cancel()
        if remote in done:
            frame = remote.result()
            for reply in self.modem.handle(frame):
                self._local.put_nowait(reply)
            if local in done:
                self._local.put_nowait(local.result())
            return frame
        return local.result()

    def close(self) -> None:
        self.wire.close()


def simulated_modem(host: FrameTransport) -> SimulatedModemTransport:
    """The `simulated` modem of a connector (`[[connectors]] modem = "simulated"`), loaded
    by the charger through the `evse.plc_modems` entry point: a `PlcModemSim` between the
    charger's SLAC link and `host` (its raw socket or in-process port)."""
    return SimulatedModemTransport(host, PlcModemSim(host_mac=host.mac))

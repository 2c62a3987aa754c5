"""Session records: `SessionSummary` (what one session on one connector did, bounded
whatever its length) and `TurnaroundStats` (the server's turnaround samples)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from evse.aio.latency import LatencyHistogram
from evse.protocol.standards import DIN

__all__ = ["MAX_SAMPLES", "SessionSummary", "TurnaroundStats"]

_PROTOCOL_NAMES = {DIN: "DIN SPEC 70121"}  # report names by namespace; -20 otherwise


class TurnaroundStats:
    """SECC turnaround samples (ns): request's last byte in -> response's first byte out.

    `all` and `loop` hold the latest `maxlen` samples (percentiles are over them; a charger
    runs for months, so never every sample); `len()` counts every sample ever added."""

    def __init__(self, maxlen: int = 1024) -> None:
        self.all: deque[int] = deque(maxlen=maxlen)
        self.loop: deque[int] = deque(maxlen=maxlen)  # charge-loop requests only
        self.count = 0

    def add(self, ns: int, *, charge_loop: bool) -> None:
        self.count += 1
        self.all.append(ns)
        if charge_loop:
            self.loop.append(ns)

    def __len__(self) -> int:
        return self.count

    @staticmethod
    def percentile_of(samples: Iterable[int], p: float) -> float | None:
        """The p-th percentile (0..100, nearest rank) in seconds, None without samples."""
        data = sorted(samples)
        if not data:
            return None
        rank = max(1, math.ceil(p / 100.0 * len(data)))
        return data[min(rank, len(data)) - 1] / 1e9

    def percentile(self, p: float, *, charge_loop: bool = False) -> float | None:
        return self.percentile_of(self.loop if charge_loop else self.all, p)


MAX_SAMPLES = 720  # per session; beyond: every other one dropped, the interval doubled


@dataclass
class SessionSummary:
    """What one session on one connector did (kept in `SeccServer.sessions`).

    Bounded whatever the session's length: turnaround in a `LatencyHistogram`, at most
    `MAX_SAMPLES` measurement samples (decimated). Once the session-end hooks have run (the
    report is written), all but the latest few summaries are `compact()`ed."""

    connector: str
    session_id: str  # hex
    evcc_id: str
    protocol: str
    resumed: bool
    tls: bool
    peer: str
    started_at: float  # Unix seconds
    ended_at: float | None = None
    reason: str | None = None
    failed: bool = False
    paused: bool = False
    service_id: int | None = None
    control_mode: int | None = None
    bidirectional: bool = False
    energy_in_wh: float = 0.0  # to the EV, measured at the connector
    energy_out_wh: float = 0.0  # from the EV
    requests: int = 0  # requests answered on this connection during the session
    turnaround_hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)  # t V A W
    sample_interval: float = 1.0  # s between samples (doubles with each decimation)
    compacted: bool = False  # samples and metering confirmations dropped (see `compact`)
    # TLS: negotiated version and suite, the vehicle certificate's subject CN (mutual TLS)
    tls_version: str | None = None
    tls_cipher: str | None = None
    vehicle_certificate: str | None = None
    authorization: str | None = None  # "EIM" / "PnC" once authorized
    emaid: str | None = None  # PnC: the verified contract's eMAID
    # PnC: the EV's verified MeteringConfirmations (evse.protocol.events.MeteringConfirmed:
    # SignedMeteringData + Signature, the signed record for billing)
    metering_confirmations: list[Any] = field(default_factory=list)
    # Safety supervisor trips during the session (evse.control.supervision.TripRecord),
    # including one found in its shutdown after `ended_at` (a contactor welded on opening)
    safety_trips: list[Any] = field(default_factory=list)
    # the pilot lifecycle around the session (evse/aio/connector_link.py; loop clock, s)
    plugged_at: float | None = None
    slac_matched_at: float | None = None
    unplugged_at: float | None = None
    # the connector's energy registers (Wh in, out) when the session started
    energy_start: tuple[float, float] = (0.0, 0.0)

    def turnaround(self, p: float) -> float | None:
        return self.turnaround_hist.percentile(p)

    def add_sample(self, sample: tuple[float, float, float, float]) -> None:
        """Keep a measurement sample; at `MAX_SAMPLES` halve them and the sampling rate."""
        if len(self.samples) >= MAX_SAMPLES:
            del self.samples[1::2]
            self.sample_interval *= 2
        self.samples.append(sample)

    def compact(self) -> None:
        """Drop the per-sample detail (in the session report by now), keep the summary."""
        self.samples = []
        self.metering_confirmations = []
        self.compacted = True

    def to_dict(self) -> dict[str, Any]:
        p50, p99 = self.turnaround(50), self.turnaround(99)
        return {
            "connector": self.connector, "session_id": self.session_id,
            "evcc_id": self.evcc_id, "protocol": self.protocol, "resumed": self.resumed,
            "tls": self.tls, "peer": self.peer, "started_at": self.started_at,
            "ended_at": self.ended_at, "reason": self.reason, "failed": self.failed,
            "paused": self.paused, "service_id": self.service_id,
            "control_mode": self.control_mode, "bidirectional": self.bidirectional,
            "energy_in_wh": self.energy_in_wh, "energy_out_wh": self.energy_out_wh,
            "requests": self.requests, "compacted": self.compacted,
            "tls_version": self.tls_version, "tls_cipher": self.tls_cipher,
            "vehicle_certificate": self.vehicle_certificate,
            "authorization": self.authorization, "emaid": self.emaid,
            "metering_confirmations": [
                c.signed_metering_data.meter_info.charged_energy_reading_wh
                for c in self.metering_confirmations],
            "safety_trips": [str(t) for t in self.safety_trips],
            "plugged_at": self.plugged_at, "slac_matched_at": self.slac_matched_at,
            "unplugged_at": self.unplugged_at,
            "turnaround_p50_ms": None if p50 is None else p50 * 1e3,
            "turnaround_p99_ms": None if p99 is None else p99 * 1e3,
        }

    def to_report_record(self, station_id: str) -> Any:
        """An `evse._report.SessionRecord` (JSON + SVG reports) of this session."""
        from evse._report import Sample, SessionRecord

        services = {1: "AC", 2: "DC", 5: "AC_BPT", 6: "DC_BPT"}
        protocol = _PROTOCOL_NAMES.get(self.protocol, "ISO15118-20")
        if self.service_id in services:
            protocol += " " + services[self.service_id]
        modes = {1: "Scheduled", 2: "Dynamic"}
        return SessionRecord(
            session_id=self.session_id,
            station_id=station_id,
            connector=self.connector,
            started_at=self.started_at,
            ended_at=self.ended_at if self.ended_at is not None else self.started_at,
            samples=tuple(Sample(t, voltage=v, current=i, power=w) for t, v, i, w in self.samples),
            energy_in_kwh=self.energy_in_wh / 1000.0,
            energy_out_kwh=self.energy_out_wh / 1000.0,
            protocol=protocol,
            control_mode=modes.get(self.control_mode or 0),
            stop_reason=self.reason,
            ev_id=self.evcc_id or None,
            metadata={"failed": self.failed, "paused": self.paused, "tls": self.tls,
                      "requests": self.requests,
                      "safety_trips": [str(t) for t in self.safety_trips],
                      "plugged_at": self.plugged_at, "slac_matched_at": self.slac_matched_at,
                      "unplugged_at": self.unplugged_at},
        )

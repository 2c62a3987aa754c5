"""What a simulated EV session produced: the record a conformance run is judged by."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One request/response exchange (response None: none came)."""

    request: str
    response: str | None
    response_code: str | None
    sent_at: float
    received_at: float | None
    connection: int  # 1 for the first TCP connection, 2 after a pause/resume, ...
    state: str

    @property
    def rtt(self) -> float | None:
        return None if self.received_at is None else self.received_at - self.sent_at


@dataclass(frozen=True, slots=True)
class TimingViolation:
    """A response slower than the SECC's performance time (not fatal for the session)."""

    request: str
    rtt: float
    limit: float


@dataclass(frozen=True, slots=True)
class SessionReport:
    scenario: str
    success: bool
    reason: str  # why the session ended (stop reason on success, failure reason otherwise)
    states: tuple[str, ...]
    messages: tuple[MessageRecord, ...]
    energy_charged_wh: float
    energy_discharged_wh: float
    initial_soc: float  # percent
    final_soc: float  # percent
    loops: int
    duration: float  # real seconds from start() to the end
    session_id: str | None = None  # hex
    evse_id: str | None = None
    protocol: str | None = None  # namespace the SECC chose
    service_id: int | None = None
    parameter_set_id: int | None = None
    control_mode: str | None = None
    connections: int = 1
    evse_notifications: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    timing_violations: tuple[TimingViolation, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rtts(self) -> list[tuple[str, float]]:
        """(request name, round-trip seconds) of every answered request, in order."""
        return [(m.request, m.rtt) for m in self.messages if m.rtt is not None]

    @property
    def request_sequence(self) -> list[str]:
        return [m.request for m in self.messages]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rtts"] = self.rtts
        return d

    def summary(self) -> str:
        rtts = [r for _, r in self.rtts]
        lines = [
            f"scenario {self.scenario}: {'OK' if self.success else 'FAILED'} ({self.reason})",
            f"  session {self.session_id} with EVSE {self.evse_id}, protocol {self.protocol}, "
            f"service {self.service_id}/{self.parameter_set_id} {self.control_mode}",
            f"  {len(self.messages)} messages over {self.connections} connection(s), "
            f"{self.loops} charge loops, {self.duration:.2f} s",
            f"  energy +{self.energy_charged_wh:.1f} Wh / -{self.energy_discharged_wh:.1f} Wh, "
            f"SOC {self.initial_soc:.1f}% -> {self.final_soc:.1f}%",
        ]
        if rtts:
            lines.append(
                f"  RTT min {min(rtts) * 1000:.1f} ms, mean {sum(rtts) / len(rtts) * 1000:.1f} "
                f"ms, max {max(rtts) * 1000:.1f} ms"
            )
        lines.append("  states: " + " > ".join(self.states))
        if self.evse_notifications:
            lines.append("  EVSE notifications: " + ", ".join(self.evse_notifications))
        for v in self.timing_violations:
            lines.append(
                f"  slow response to {v.request}: {v.rtt * 1000:.0f} ms > {v.limit * 1000:.0f} ms"
            )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def judged_on_energy(report: SessionReport, *, dc: bool) -> SessionReport:
    """A DC session that ended normally but moved no energy either way is a failure: the
    power stage never delivered (a charger that answers every message and never closes its
    contactors must not pass a conformance run)."""
    if not (report.success and dc):
        return report
    if report.energy_charged_wh > 0 or report.energy_discharged_wh > 0:
        return report
    return dataclasses.replace(
        report, success=False,
        reason=f"no energy moved in a DC session (it ended: {report.reason})")

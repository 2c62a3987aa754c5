"""The per-session state of a -2 session.

The common `Session` record (evse/protocol/session.py) is what the adapters, the station
port and the reports read (SessionID, EVCCID, EV limits, authorization, state of charge),
and what `SessionStore` keeps for a paused session; `Iso2Session` wraps it with what only -2
needs (its own state, the energy transfer mode, the offered SAScheduleTuple, timers).
"""

from __future__ import annotations

from dataclasses import dataclass

from evse.protocol.iso2.states import State
from evse.protocol.iso2.timeouts import Iso2Timeouts
from evse.protocol.session import Session


@dataclass
class Iso2Session:
    record: Session  # the common record (protocol = the -2 namespace)
    state: State = State.SESSION_SETUP
    payment_option: str | None = None  # "ExternalPayment" (EIM) / "Contract" (PnC)
    transfer_mode: str | None = None  # RequestedEnergyTransferMode (DC_extended, ...)
    sa_schedule_tuple_id: int | None = None  # offered in ChargeParameterDiscoveryRes
    receipt_requested: bool = False  # a response said ReceiptRequired=true (PnC)
    remaining_time_to_full_s: float | None = None  # CurrentDemandReq, converted to seconds
    # progress and timers (on the `now` clock)
    ongoing_since: float | None = None
    cable_check_started: float | None = None
    precharge_target: float | None = None
    energy_flowing: bool = False  # contactors closed by PowerDelivery(Start)
    stop_notified_at: float | None = None  # EVSENotification=StopCharging sent

    @property
    def energy(self) -> str | None:
        """ "dc" or "ac" once the EV requested an energy transfer mode."""
        if self.transfer_mode is None:
            return None
        return "dc" if self.transfer_mode.startswith("DC") else "ac"

    def deadlines(self, t: Iso2Timeouts, notification_max_delay: int) -> dict[str, float]:
        """The session's own timers that are running: {reason: deadline}."""
        out: dict[str, float] = {}
        if self.ongoing_since is not None:
            out["EVSEProcessing=Ongoing for too long"] = self.ongoing_since + t.ongoing
        if self.cable_check_started is not None and self.state == State.DC_CABLE_CHECK:
            out["cable check timeout"] = self.cable_check_started + t.cable_check
        loop = self.state in (State.DC_CHARGE_LOOP, State.AC_CHARGE_LOOP)
        if self.stop_notified_at is not None and loop:
            out["the EV did not stop after EVSENotification=StopCharging"] = (
                self.stop_notified_at + notification_max_delay
            )
        return out

"""The DIN session of one connection: DIN's own progress beside the common `Session` record.

`DinSession.record` is the common `evse.protocol.session.Session` the adapters read (SessionID,
EVCCID, authorization, the selected DC service, EV limits, state of charge): a DIN session
looks like a -20 Scheduled DC session to the station, MQTT and reports. Everything only DIN
needs (its state, cable check and precharge progress, the isolation result) lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

from evse.protocol.din.states import State
from evse.protocol.session import Session


@dataclass
class DinSession:
    record: Session
    state: State = State.SESSION_SETUP
    ongoing_since: float | None = None  # first EVSEProcessing=Ongoing of the current loop
    cable_check_started: float | None = None
    isolation: str = "Invalid"  # DC_EVSEStatus EVSEIsolationStatus: Invalid, Valid, Fault
    precharge_target: float | None = None
    energy_flowing: bool = False  # contactors closed by PowerDelivery(ReadyToChargeState)
    authorization_requested: bool = False
    terminate_notified_at: float | None = None  # first EVSENotification=StopCharging
    remaining_time_to_full_soc_s: float | None = None  # from CurrentDemandReq, in seconds
    remaining_time_to_bulk_soc_s: float | None = None
    charging_complete: bool = False

    @property
    def session_id(self) -> bytes:
        return self.record.session_id

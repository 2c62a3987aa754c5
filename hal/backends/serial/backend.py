"""The `serial` HAL backend: the board (pilot, contactors, e-stop) behind the safety MCU.

`SerialBoard` implements `hal.interfaces.Board` over a `SerialLink`. A `SerialBackend`
provides only the board: a full charger composes it with the other parts, each named
explicitly (`hal.compose`, `hal.registry.create_backend_from_spec`).

Command semantics (the HAL contract: validate, record, return at once):

- While the link is up, every command goes out at once and is retried until ACKed.
- While it is down, a command only updates the desired state, which is sent when the
  link comes (back) up; opening the contactors and the e-stop are also sent at once,
  unacknowledged, in case only the MCU's transmit side is broken.
- When the link is lost the MCU goes to its safe state by itself (contactors open,
  state F), so the board's commanded state falls back to exactly that: control code must
  command again after a reconnection, nothing re-closes by itself.
- Every loss (silence, a stale STATUS, an unacknowledged command, an MCU reset or
  re-handshake, another protocol version) is latched: `fault` reports it even after the
  link is back up, and closing the contactors is refused, until control acknowledges it
  (`acknowledge_faults`, called when a new session starts). A loss shorter than one poll
  therefore still ends the running session.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from hal.backends.device import DeviceBackend
from hal.backends.serial.link import (
    DEFAULT_MAX_STATUS_AGE,
    LinkState,
    PendingCommand,
    PySerialTransport,
    SerialLink,
    Transport,
)
from hal.backends.serial.protocol import (
    AckResult,
    ErrorFlags,
    EstopFlags,
    McuState,
    MsgType,
    PilotCode,
    pack_u8,
    pack_u16,
)
from hal.interfaces import Board, HalBackend, HalError, PilotState

log = logging.getLogger(__name__)

_PILOT = {
    PilotCode.A: PilotState.A,
    PilotCode.B: PilotState.B,
    PilotCode.C: PilotState.C,
    PilotCode.D: PilotState.D,
    PilotCode.E: PilotState.E,
    PilotCode.F: PilotState.F,
}


class LinkLossNotAcknowledged(HalError):
    """Closing the contactors is refused after an MCU link loss until control acknowledges
    the loss (a new session)."""


class SerialBoard(Board):
    def __init__(self, link: SerialLink) -> None:
        super().__init__()
        self.link = link
        self._estop_host_latched = False
        self._reset_pending = False
        self._lost: str | None = None  # the latched link loss, until acknowledged
        link.on_up = self._on_link_up
        link.on_lost = self._on_link_lost
        link.on_ack = self._on_ack

    # ---- readings ------------------------------------------------------------------------

    @property
    def pilot_state(self) -> PilotState:
        """As the MCU measured it; F (what the MCU drives in its safe state) without a link."""
        status = self.link.status
        if status is None or not self.link.up:
            return PilotState.F
        return _PILOT[status.pilot]

    @property
    def contactors_closed(self) -> bool:
        """Auxiliary-contact feedback from the last STATUS (False before the first one)."""
        status = self.link.status
        return bool(status is not None and status.contactors_feedback)

    @property
    def emergency_stop_active(self) -> bool:
        if self._estop_host_latched:
            return True
        status = self.link.status
        if status is None:
            return False
        if EstopFlags.BUTTON_PRESSED in status.estop:
            return True
        return EstopFlags.LATCHED in status.estop and not self._reset_pending

    @property
    def emergency_stop_button_pressed(self) -> bool:
        status = self.link.status
        return bool(status is not None and EstopFlags.BUTTON_PRESSED in status.estop)

    @property
    def proximity_current_rating(self) -> float | None:
        """Cable current rating from the proximity pilot in A, None if no valid cable."""
        status = self.link.status
        if status is None or status.pp_current_a == 0:
            return None
        return float(status.pp_current_a)

    @property
    def mcu_error_flags(self) -> ErrorFlags:
        status = self.link.status
        return ErrorFlags(0) if status is None else status.errors

    @property
    def fault(self) -> str | None:
        """Link fault, a link loss not yet acknowledged, or an MCU that reports an internal
        fault; None when healthy."""
        link_fault = self.link.fault
        if self._lost is not None:  # the loss first: it is what ended the session
            if link_fault is None:
                return f"{self._lost} (link up again; cleared when a new session starts)"
            if link_fault != self._lost:
                return f"{self._lost}; then: {link_fault}"
        if link_fault is not None:
            return link_fault
        status = self.link.status
        if status is not None and status.state is McuState.SAFE_FAULT:
            return "MCU in its internal-fault safe state"
        return None

    @property
    def link_up(self) -> bool:
        return self.link.up

    @property
    def link_loss(self) -> str | None:
        """The latched link loss (None if none since the last acknowledgement)."""
        return self._lost

    def acknowledge_link_loss(self) -> bool:
        """Clear the latched loss once the link is up again; True if nothing is latched now."""
        if self._lost is None:
            return True
        if not self.link.up or self.link.fault is not None:
            return False
        log.info("MCU link loss acknowledged: %s", self._lost)
        self._lost = None
        return True

    # ---- commands ------------------------------------------------------------------------

    def _apply_pwm_duty(self, percent: float) -> None:
        if self.link.up:
            self.link.send_command(MsgType.SET_PWM, pack_u16(round(percent * 10)))

    def _apply_contactors(self, closed: bool) -> None:
        if closed and self._lost is not None:
            raise LinkLossNotAcknowledged(f"contactors stay open: {self._lost}")
        payload = pack_u8(int(closed))
        if self.link.up:
            self.link.send_command(MsgType.SET_CONTACTORS, payload)
        elif not closed:
            self.link.send_unacknowledged(MsgType.SET_CONTACTORS, payload)

    def _apply_emergency_stop(self) -> None:
        self._estop_host_latched = True
        self._reset_pending = False
        if self.link.up:
            self.link.send_command(MsgType.EMERGENCY_STOP)
        else:
            self.link.send_unacknowledged(MsgType.EMERGENCY_STOP)

    def reset_emergency_stop(self) -> bool:
        """Unlatch unless the MCU reports the button pressed (or the link is down).

        Clears the host's latch at once and asks the MCU to clear its own; the MCU's
        latch is ignored until it answers, and comes back if it refuses.
        """
        if self.emergency_stop_button_pressed or not self.link.up:
            return False
        self._estop_host_latched = False
        status = self.link.status
        if status is not None and status.estop & (EstopFlags.LATCHED | EstopFlags.HOST_TRIGGERED):
            self._reset_pending = True
            self.link.send_command(MsgType.RESET_EMERGENCY_STOP)
        return True

    # ---- link callbacks ------------------------------------------------------------------

    def _on_link_up(self) -> None:
        # Bring the MCU to the desired state; after a loss that is the safe state, and the
        # contactors stay open whatever was commanded before: only control, acknowledging
        # the loss in a new session, may close them again.
        if self._lost is not None:
            self._contactors_commanded = False
        self.link.send_command(MsgType.SET_PWM, pack_u16(round(self.pwm_duty * 10)))
        self.link.send_command(
            MsgType.SET_CONTACTORS, pack_u8(int(self.contactors_commanded_closed))
        )
        if self._estop_host_latched:
            self.link.send_command(MsgType.EMERGENCY_STOP)

    def _on_link_lost(self, reason: str) -> None:
        # The MCU's own watchdog opens the contactors and drives state F.
        if self._lost is None:
            self._lost = reason  # the first loss is the cause; later ones follow from it
        self._contactors_commanded = False
        self._pwm_duty = 0.0
        self._reset_pending = False

    def _on_ack(self, cmd: PendingCommand, result: AckResult) -> None:
        if cmd.msg_type is MsgType.RESET_EMERGENCY_STOP:
            self._reset_pending = False
        elif cmd.msg_type is MsgType.SET_CONTACTORS and result is not AckResult.OK:
            self._contactors_commanded = False

    def after_poll(self) -> None:
        """Mirror what the MCU did on its own into the commanded state."""
        status = self.link.status
        if status is None:
            return
        if EstopFlags.LATCHED in status.estop and not self._reset_pending:
            self._contactors_commanded = False  # the MCU opened them and stays open


class SerialBackend(DeviceBackend):
    """The board over the serial link. The power supply, isolation monitor and meter are
    other parts (hal.compose), or come from a `base` backend given explicitly."""

    name = "serial"
    provides: ClassVar[tuple[str, ...]] = ("board",)

    def __init__(
        self,
        port: str | None = None,
        *,
        baudrate: int = 115200,
        transport: Transport | None = None,
        base: HalBackend | None = None,
        keepalive_interval: float = 0.1,
        mcu_timeout: float = 0.5,
        hello_interval: float = 0.25,
        ack_timeout: float = 0.1,
        max_retries: int = 3,
        connect_timeout: float = 2.0,
        max_status_age_s: float = DEFAULT_MAX_STATUS_AGE,
    ) -> None:
        if transport is None:
            if port is None:
                raise ValueError("the serial backend needs a port (e.g. /dev/ttyS1)")
            transport = PySerialTransport.open(port, baudrate)
        super().__init__(base=base, target=port)
        self.port = port
        self.link = SerialLink(
            transport,
            keepalive_interval=keepalive_interval,
            mcu_timeout=mcu_timeout,
            hello_interval=hello_interval,
            ack_timeout=ack_timeout,
            max_retries=max_retries,
            connect_timeout=connect_timeout,
            max_status_age_s=max_status_age_s,
        )
        self._board = SerialBoard(self.link)

    @property
    def board(self) -> SerialBoard:
        return self._board

    @property
    def fault(self) -> str | None:
        return self._board.fault

    @property
    def link_state(self) -> LinkState:
        return self.link.state

    def fileno(self) -> int:
        """The port's descriptor, for an event loop to wake the poll when bytes arrive."""
        return self.link.transport.fileno()

    def _acknowledge_device(self, now: float) -> None:
        self._board.acknowledge_link_loss()

    def _poll_device(self, now: float) -> None:
        self.link.poll(now)
        self._board.after_poll()

    def _close_device(self) -> None:
        self.link.close()

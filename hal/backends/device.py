"""The shared base of the backends that drive one piece of real hardware.

`serial` (the board behind the safety MCU), `can` (the DC power modules) and the Modbus
devices each provide some of the four HAL parts (`provides`). The others are not theirs:
they come from the other parts of a composed backend (`hal.compose`), or from a `base`
backend given explicitly; asking a device alone for a part it lacks raises `MissingPart`.
Nothing is ever filled in with a simulation.

The base owns the HalBackend boilerplate the devices used to copy: delegation of the parts
they lack, the label, and the close order (own parts to their safe state, then release).
A subclass overrides the property of each part it provides and the `_poll_device`,
`_acknowledge_device` and `_close_device` hooks.
"""

from __future__ import annotations

from typing import ClassVar

from hal.interfaces import (
    Board,
    HalBackend,
    IsolationMonitor,
    Meter,
    PowerSupplyDC,
    PowerSupplyMode,
)
from hal.parts import MissingPart


class DeviceBackend(HalBackend):
    """A backend for one device providing `provides`; the other parts from `base`."""

    provides: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, base: HalBackend | None = None, target: str | None = None) -> None:
        self.base = base
        self.target = target

    @property
    def label(self) -> str:
        """How `describe()` names this device: "serial /dev/ttymxc2"."""
        return self.name if not self.target else f"{self.name} {self.target}"

    def _other(self, part: str) -> HalBackend:
        if self.base is None:
            raise MissingPart(
                f"the {self.name} backend provides only the {' and '.join(self.provides)}; "
                f"the {part} is another part: compose them (hal.compose, [hal.parts])"
            )
        return self.base

    # The parts a device lacks; each subclass overrides the ones it provides.
    @property
    def board(self) -> Board:
        return self._other("board").board

    @property
    def power_supply(self) -> PowerSupplyDC:
        return self._other("power_supply").power_supply

    @property
    def isolation_monitor(self) -> IsolationMonitor:
        return self._other("isolation_monitor").isolation_monitor

    @property
    def meter(self) -> Meter:
        return self._other("meter").meter

    @property
    def fault(self) -> str | None:
        """The device's latched fault, or None."""
        return None

    def _poll_device(self, now: float) -> None:
        """Do this device's I/O up to `now`."""

    def _acknowledge_device(self, now: float) -> None:
        """Clear latched faults whose cause has gone."""

    def _close_device(self) -> None:
        """Release the device (port, bus, thread)."""

    def poll(self, now: float) -> None:
        # A given base belongs to whoever gave it (a composite polls it itself).
        self._poll_device(now)

    def acknowledge_faults(self, now: float) -> None:
        self._acknowledge_device(now)

    def close(self) -> None:
        """Own parts to their safe state, then release the device."""
        try:
            if "power_supply" in self.provides:
                self.power_supply.set_mode(PowerSupplyMode.OFF)
            if "board" in self.provides:
                self.board.open_contactors()
        finally:
            self._close_device()

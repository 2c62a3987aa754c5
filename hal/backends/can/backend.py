"""The `can` HAL backend: the DC power supply as bidirectional modules on a CAN bus.

It provides only the power supply: the board, isolation monitor and meter are other parts
(`hal.compose`), or come from a `base` backend given explicitly.

Tests and demos only: `simulated_modules=True` (spec `can:virtual+sim`) puts simulated
modules (`hal.sim.can_modules.ModuleRack`) on the same process-local virtual channel and
steps them inside `poll(now)`, so one process runs the charger against its modules. Their
output reaches a simulated battery while the board's contactors are closed (the board of
the composite backend, see `bind_emergency_stop`). Never used with a real bus; the power
supply then says `simulated` (hal.parts.describe).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import can

from hal.backends.can.protocol import BITRATE, CONTROLLER
from hal.backends.can.supply import CanPowerSupply, ModuleRating
from hal.backends.device import DeviceBackend
from hal.interfaces import Board, HalBackend

if TYPE_CHECKING:
    from hal.sim.can_modules import ModuleRack

DEFAULT_VIRTUAL_CHANNEL = "evse-can"


class CanBackend(DeviceBackend):
    name = "can"
    provides: ClassVar[tuple[str, ...]] = ("power_supply",)

    def __init__(
        self,
        *,
        interface: str = "virtual",
        channel: str | None = None,
        bitrate: int = BITRATE,
        bus: can.BusABC | None = None,
        module_addresses: Sequence[int] = (0, 1),
        module_min_voltage: float = 150.0,
        module_max_voltage: float = 1000.0,
        module_max_charge_current: float = 50.0,
        module_max_charge_power: float = 30_000.0,
        module_max_discharge_current: float = 50.0,
        module_max_discharge_power: float = 30_000.0,
        controller_address: int = CONTROLLER,
        status_interval: float = 0.1,
        module_timeout: float = 0.5,
        refresh_interval: float = 1.0,
        base: HalBackend | None = None,
        bus_options: dict[str, Any] | None = None,
        simulated_modules: bool = False,
        simulated_module_options: dict[str, Any] | None = None,
    ) -> None:
        if simulated_modules and (bus is not None or interface != "virtual"):
            raise ValueError("simulated_modules needs the process-local 'virtual' interface")
        self._owns_bus = bus is None
        if bus is None:
            if channel is None:
                if interface != "virtual":
                    raise ValueError(f"the {interface!r} CAN interface needs a channel")
                channel = DEFAULT_VIRTUAL_CHANNEL
            options = dict(bus_options or {})
            if interface not in ("virtual", "udp_multicast"):
                options.setdefault("bitrate", bitrate)  # the emulated buses have no bit rate
            bus = can.Bus(interface=interface, channel=channel, **options)
        self.bus = bus
        self.interface, self.channel = interface, channel
        rating = ModuleRating(
            min_voltage=module_min_voltage,
            max_voltage=module_max_voltage,
            max_charge_current=module_max_charge_current,
            max_charge_power=module_max_charge_power,
            max_discharge_current=module_max_discharge_current,
            max_discharge_power=module_max_discharge_power,
        )
        super().__init__(base=base, target=f"{interface}:{channel}"
                         + (" (simulated modules)" if simulated_modules else ""))
        self._supply = CanPowerSupply(
            bus,
            module_addresses,
            rating=rating,
            controller_address=controller_address,
            status_interval=status_interval,
            module_timeout=module_timeout,
            refresh_interval=refresh_interval,
            interlock=self._base_emergency_stop,
        )
        self._supply.simulated = simulated_modules
        self._contactor_board: Board | None = None
        self.rack: ModuleRack | None = None
        self._rack_bus: can.BusABC | None = None
        if simulated_modules:
            self._start_simulated_modules(channel or DEFAULT_VIRTUAL_CHANNEL,
                                          module_addresses, rating,
                                          dict(simulated_module_options or {}))

    def _start_simulated_modules(
        self,
        channel: str,
        addresses: Sequence[int],
        rating: ModuleRating,
        options: dict[str, Any],
    ) -> None:
        # Imported here: hal.sim.can_modules speaks this package's protocol module.
        from hal.sim.battery import EvBattery
        from hal.sim.can_modules import ModuleRack

        soc = float(options.pop("soc", 0.5))
        options.setdefault("max_charge_current", rating.max_charge_current)
        options.setdefault("max_discharge_current", rating.max_discharge_current)
        self._rack_bus = can.Bus(interface="virtual", channel=channel)
        self.rack = ModuleRack(
            self._rack_bus,
            addresses,
            battery=EvBattery(soc=soc),
            connected=self._simulated_output_connected,
            **options,
        )

    def _simulated_output_connected(self) -> bool:
        board = self._contactor_board or (self.base.board if self.base is not None else None)
        return board is not None and board.contactors_closed

    def _base_emergency_stop(self) -> bool:
        # Until a composite binds its board (bind_emergency_stop), a given base's board.
        return self.base is not None and self.base.board.emergency_stop_active

    def bind_emergency_stop(self, board: Board) -> None:
        """Refuse to energise while `board`'s e-stop is latched (for composite backends).

        With simulated modules, `board`'s contactor feedback also connects them to their
        battery."""
        self._supply.interlock = lambda: board.emergency_stop_active
        self._contactor_board = board

    @property
    def power_supply(self) -> CanPowerSupply:
        return self._supply

    @property
    def fault(self) -> str | None:
        return self._supply.fault

    def _acknowledge_device(self, now: float) -> None:
        self._supply.acknowledge_faults(now)

    def _poll_device(self, now: float) -> None:
        if self.rack is not None:
            self.rack.step(now)  # answer what the last poll sent (one poll of latency)
        self._supply.poll(now)

    def _close_device(self) -> None:
        try:
            self._supply.close()
        finally:
            if self._owns_bus:
                self.bus.shutdown()
            if self._rack_bus is not None:
                self._rack_bus.shutdown()

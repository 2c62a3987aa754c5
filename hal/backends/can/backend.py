"""The `can` HAL backend: the DC power supply as bidirectional modules on a CAN bus.

The board, isolation monitor and meter come from another backend (`base`, by default a
private `sim` backend); combine it with `serial` through `hal.registry` for a full charger.

Tests and demos only: `simulated_modules=True` (spec `can:virtual+sim`) puts simulated
modules (`simulators.can_module.ModuleRack`) on the same process-local virtual channel and
steps them inside `poll(now)`, so one process runs the charger against its modules. Their
output reaches a simulated battery while the board's contactors are closed (the board of
the composite backend, see `bind_emergency_stop`). Never used with a real bus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import can

from hal.backends.can.protocol import BITRATE, CONTROLLER
from hal.backends.can.supply import CanPowerSupply, ModuleRating
from hal.interfaces import Board, HalBackend, IsolationMonitor, Meter

DEFAULT_VIRTUAL_CHANNEL = "evse-can"


class CanBackend(HalBackend):
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
        **base_options: Any,
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
        self._owns_base = base is None
        if base is None:
            from hal.backends.sim import SimBackend

            base = SimBackend(**base_options)
        elif base_options:
            raise TypeError(f"unexpected options with a given base: {sorted(base_options)}")
        self.base = base
        self._supply = CanPowerSupply(
            bus,
            module_addresses,
            rating=rating,
            controller_address=controller_address,
            status_interval=status_interval,
            module_timeout=module_timeout,
            refresh_interval=refresh_interval,
            interlock=lambda: self.base.board.emergency_stop_active,
        )
        self._contactor_board: Board | None = None
        self.rack: Any = None  # simulators.can_module.ModuleRack when simulated_modules
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
        from simulators.battery import EvBattery
        from simulators.can_module import ModuleRack

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
        board = self._contactor_board or self.base.board
        return board.contactors_closed

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
    def board(self) -> Board:
        return self.base.board

    @property
    def isolation_monitor(self) -> IsolationMonitor:
        return self.base.isolation_monitor

    @property
    def meter(self) -> Meter:
        return self.base.meter

    @property
    def fault(self) -> str | None:
        return self._supply.fault

    def acknowledge_faults(self, now: float) -> None:
        self._supply.acknowledge_faults(now)
        if self._owns_base:
            self.base.acknowledge_faults(now)

    def poll(self, now: float) -> None:
        if self.rack is not None:
            self.rack.step(now)  # answer what the last poll sent (one poll of latency)
        self._supply.poll(now)
        if self._owns_base:
            self.base.poll(now)

    def close(self) -> None:
        try:
            self._supply.close()
            if self._owns_base:
                self.base.close()
        finally:
            if self._owns_bus:
                self.bus.shutdown()
            if self._rack_bus is not None:
                self._rack_bus.shutdown()

"""`can` backend: bidirectional DC power modules on CAN (Infypower BEG-style identifiers).

The frame layout is specified in docs/can_protocol.md; `protocol` packs the frames,
`supply` shares one `PowerSupplyDC` among the modules, `backend` is the HAL backend.
"""

from hal.backends.can.backend import CanBackend
from hal.backends.can.supply import (
    CanPowerSupply,
    ModuleHealth,
    ModuleRating,
    ModuleState,
    SupplyEvent,
)

__all__ = [
    "CanBackend",
    "CanPowerSupply",
    "ModuleHealth",
    "ModuleRating",
    "ModuleState",
    "SupplyEvent",
]

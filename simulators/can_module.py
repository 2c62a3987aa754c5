"""Moved to `hal.sim.can_modules` (the simulated modules behind `can:virtual+sim`, an
explicitly chosen simulated power supply; `hal` never imports `simulators`). Re-exported
here for the simulators and their users."""

from hal.sim.can_modules import *  # noqa: F403
from hal.sim.can_modules import __all__ as __all__

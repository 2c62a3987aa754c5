"""Moved to `hal.sim.power_stage` (the production home of the `sim` backend's physics; `hal`
never imports `simulators`). Re-exported here for the simulators and their users."""

from hal.sim.power_stage import *  # noqa: F403
from hal.sim.power_stage import __all__ as __all__

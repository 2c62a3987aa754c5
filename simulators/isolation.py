"""Moved to `hal.sim.isolation` (the production home of the `sim` backend's physics; `hal`
never imports `simulators`). Re-exported here for the simulators and their users."""

from hal.sim.isolation import *  # noqa: F403
from hal.sim.isolation import __all__ as __all__

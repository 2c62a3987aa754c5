"""Fixtures for the HAL tests: backends with their simulated hardware attached."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from hal_rigs import CanRig, SerialRig

from hal.interfaces import HalBackend
from hal.registry import create_backend

# Backends that need simulated hardware on the other end of their link get a rig (the
# backend plus its simulator, clocked together); the rest are created by name alone.
RIGS: dict[str, Callable[[], HalBackend]] = {"serial": SerialRig, "can": CanRig}


@pytest.fixture
def make_backend() -> Iterator[Callable[[str], HalBackend]]:
    made: list[HalBackend] = []

    def make(name: str) -> HalBackend:
        factory = RIGS.get(name)
        backend = factory() if factory is not None else create_backend(name)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        with contextlib.suppress(Exception):
            backend.close()

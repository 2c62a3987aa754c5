"""Fixtures of the security tests: the in-memory PnC PKI per algorithm (never written to the
repository) and the public vectors (read from ../shared at test time)."""

from __future__ import annotations

from typing import Any

import pytest

from certs.pnc_pki import PncPki
from tests.conftest import load_vectors
from tests.security.helpers import ALGORITHMS, pki_for


@pytest.fixture(params=ALGORITHMS)
def pki(request: pytest.FixtureRequest) -> PncPki:
    return pki_for(str(request.param))


@pytest.fixture(scope="session")
def vectors() -> dict[str, dict[str, Any]]:
    found = {v["id"]: v for v in load_vectors()}
    if not found:
        pytest.skip("../shared/vectors/vectors.json not available")
    return found

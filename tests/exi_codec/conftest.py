from __future__ import annotations

import os
from types import ModuleType

import pytest

import exi_codec
from exi_codec import _engine_py


def _engines() -> list[str]:
    return ["pure", "cython"]


@pytest.fixture(params=_engines())
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """exi_codec with one engine forced: every codec test runs against both twins."""
    if request.param == "cython":
        try:
            from exi_codec import _engine_c  # type: ignore[attr-defined]
        except ImportError:
            if os.environ.get("EXI_CODEC_NO_EXT"):
                pytest.skip("built without the Cython extension (EXI_CODEC_NO_EXT)")
            raise
        engine = _engine_c
    else:
        engine = _engine_py
    monkeypatch.setattr(exi_codec, "_engine", engine)
    return exi_codec

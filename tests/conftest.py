"""Shared test fixtures: the third-party vectors and schemas live in ../shared (never copied)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVSE_SHARED_DIR", ROOT.parent / "shared"))
VECTORS_FILE = SHARED / "vectors" / "vectors.json"
SCHEMAS_DIR = SHARED / "schemas"


def load_vectors() -> list[dict[str, Any]]:
    if not VECTORS_FILE.exists():
        return []
    return json.loads(VECTORS_FILE.read_text())  # type: ignore[no-any-return]

"""Shared test fixtures: the third-party vectors and schemas live in ../shared (never copied)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVSE_SHARED_DIR", ROOT.parent / "shared"))
VECTORS_FILE = SHARED / "vectors" / "vectors.json"
SCHEMAS_DIR = SHARED / "schemas"


def load_vectors() -> list[dict[str, Any]]:
    if not VECTORS_FILE.exists():
        if os.environ.get("CI"):  # CI always has ../shared: a missing file is a broken setup
            raise FileNotFoundError(f"test vectors not found at {VECTORS_FILE}")
        return []
    return json.loads(VECTORS_FILE.read_text())  # type: ignore[no-any-return]

"""Ending the background tasks the asyncio adapters own."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_task"]


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (None: nothing to do) and wait until it has ended; its cancellation
    is not raised to the caller."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

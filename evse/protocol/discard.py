"""Bounded work for discarded V2GTP frames.

A frame with a bad header gets no answer, but a peer must not make us skip frames for ever:
`DiscardBudget` counts the frames and bytes discarded since the last valid frame and says
when a limit is passed (the connection then closes, power in a safe state first).
"""

from __future__ import annotations

from evse.protocol.v2gtp import V2GTPError


class DiscardBudget:
    __slots__ = ("max_frames", "max_bytes", "frames", "bytes")

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.frames = 0
        self.bytes = 0

    def reset(self) -> None:
        """A valid frame arrived."""
        self.frames = self.bytes = 0

    def spend(self, error: V2GTPError) -> str | None:
        """Count one discarded frame; the reason to close once past a limit, else None."""
        self.frames += 1
        self.bytes += error.skipped
        if self.frames <= self.max_frames and self.bytes <= self.max_bytes:
            return None
        return (
            f"{self.frames} V2GTP frames ({self.bytes} bytes) discarded without a valid one; "
            f"last: {error}"
        )

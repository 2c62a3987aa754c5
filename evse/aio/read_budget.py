"""Per-connection read budget: what one EV connection may cost the event loop.

A connection streaming frames the SECC ignores (unknown payload types, ...) costs CPU per
frame: about 2.6 us each in the sans-IO reassembler (one 256 KiB read of 12-byte frames:
~55 ms), and three connections streaming them kept the charger at 100 % CPU while another
connector's car missed its charge-loop performance time. The adapter therefore:

- hands the SECC at most `chunk` bytes per connection per loop iteration (the rest waits in a
  backlog while reading is paused; the next chunk follows with `call_soon`, after the other
  connections' callbacks);
- feeds at most `bytes_per_window` bytes per `window` seconds; a connection over it is paused
  until the window ends, so it can never take more than its share of the loop;
- closes a connection after `max_bytes_without_message` received bytes with no response
  written (every valid request is answered; ignored frames are not): the asyncio-level
  backstop, whatever the sans-IO SECC's own count of ignored frames does.

`ReadMeter` holds the arithmetic (explicit `now`, no asyncio) so it is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from evse.protocol.v2gtp import DEFAULT_MAX_PAYLOAD, HEADER_SIZE


@dataclass(frozen=True, slots=True)
class ReadBudget:
    chunk: int = 1024  # bytes per connection per loop iteration (~0.25 ms of junk frames)
    window: float = 0.1  # s
    bytes_per_window: int = 16384  # 160 KB/s: a 64 KiB message still arrives in 0.4 s
    max_bytes_without_message: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.chunk <= 0 or self.bytes_per_window < self.chunk:
            raise ValueError("need 0 < chunk <= bytes_per_window")
        if not self.window > 0:
            raise ValueError("window must be > 0 s")
        if self.max_bytes_without_message < DEFAULT_MAX_PAYLOAD + HEADER_SIZE:
            raise ValueError("max_bytes_without_message must hold the largest V2GTP frame")


class ReadMeter:
    """One connection's budget state: bytes fed in the current window, bytes since the
    last response."""

    __slots__ = ("budget", "window_start", "window_bytes", "since_message")

    def __init__(self, budget: ReadBudget) -> None:
        self.budget = budget
        self.window_start = -float("inf")
        self.window_bytes = 0
        self.since_message = 0

    def allowance(self, now: float) -> int:
        """How many bytes may be fed now (0: wait for `window_end()`)."""
        b = self.budget
        if now >= self.window_start + b.window:
            self.window_start, self.window_bytes = now, 0
        return min(b.chunk, b.bytes_per_window - self.window_bytes)

    def window_end(self) -> float:
        return self.window_start + self.budget.window

    def fed(self, n: int, *, answered: bool) -> bool:
        """Count `n` bytes fed; `answered`: a response was written meanwhile. True when
        the connection is over its limit of bytes without a valid message."""
        self.window_bytes += n
        self.since_message = 0 if answered else self.since_message + n
        return self.since_message > self.budget.max_bytes_without_message

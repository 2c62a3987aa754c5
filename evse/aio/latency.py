"""Bounded latency statistics: a log-bucket histogram instead of a list of every sample.

A charge loop answers a request every 50-250 ms: a list of turnaround samples per session
grows by up to 70,000 ints an hour. `LatencyHistogram` keeps counts in buckets of 1/32 of a
power of two (relative error under 3.2 %), at most a few hundred buckets whatever the number
of samples, and gives percentiles and the maximum from them.
"""

from __future__ import annotations

import math

SUB_BUCKETS = 32  # per power of two
_SHIFT = SUB_BUCKETS.bit_length() - 1  # 5


def _bucket(ns: int) -> int:
    if ns < SUB_BUCKETS:
        return ns  # exact below 32 ns
    exp = ns.bit_length() - _SHIFT - 1
    return (exp + 1) * SUB_BUCKETS + ((ns >> exp) - SUB_BUCKETS)


def _upper(bucket: int) -> int:
    """The largest value (ns) that falls in `bucket`."""
    if bucket < SUB_BUCKETS:
        return bucket
    exp, sub = divmod(bucket, SUB_BUCKETS)
    exp -= 1
    return ((SUB_BUCKETS + sub + 1) << exp) - 1


class LatencyHistogram:
    """Counts of samples (ns) per log bucket; memory bounded by the value range, not the count."""

    __slots__ = ("counts", "count", "max_ns")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.max_ns = 0

    def add(self, ns: int) -> None:
        ns = max(0, int(ns))
        b = _bucket(ns)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.count += 1
        if ns > self.max_ns:
            self.max_ns = ns

    def __len__(self) -> int:
        return self.count

    def percentile(self, p: float) -> float | None:
        """The p-th percentile (0..100, nearest rank) in seconds, None without samples; the
        bucket's upper bound (never below the true value, at most 3.2 % above it)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(p / 100.0 * self.count))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(_upper(b), self.max_ns) / 1e9
        return self.max_ns / 1e9  # pragma: no cover (rank <= count)

"""SIL insulation monitoring device: a settable resistance, measuring delays, faults.

Like a real IMD it reports nothing until a measuring cycle has completed after `start()`,
then a fresh value every `measuring_time`. Faults are injected by setting
`resistance_ohm` low (an insulation fault, judged by control), `device_fault` (the IMD
itself is broken) or `fail_self_test`.
"""

from __future__ import annotations

from hal.sim.power_stage import TIME_EPSILON, Clocked

__all__ = ["IsolationModel"]


class IsolationModel(Clocked):
    def __init__(
        self,
        resistance_ohm: float = 5e6,
        *,
        measuring_time: float = 1.0,
        self_test_time: float = 2.0,
    ) -> None:
        super().__init__()
        if measuring_time <= 0 or self_test_time < 0:
            raise ValueError("measuring_time must be > 0 and self_test_time >= 0")
        self.resistance_ohm = resistance_ohm
        self.measuring_time = measuring_time
        self.self_test_time = self_test_time
        self.device_fault: str | None = None
        self.fail_self_test = False
        self.measuring = False
        self.reading: tuple[float, float] | None = None  # (ohms, timestamp)
        self.self_test_passed: bool | None = None
        self._cycle = 0.0
        self._self_test_left: float | None = None

    def start(self) -> None:
        if not self.measuring:
            self.measuring = True
            self.reading = None
            self._cycle = 0.0

    def stop(self) -> None:
        self.measuring = False

    def start_self_test(self) -> None:
        self.self_test_passed = None
        self._self_test_left = self.self_test_time

    def step(self, now: float) -> None:
        dt = self._advance(now)
        if self._self_test_left is not None:
            self._self_test_left -= dt
            if self._self_test_left <= TIME_EPSILON:
                self._self_test_left = None
                self.self_test_passed = not (self.fail_self_test or self.device_fault)
        if self.measuring and self.device_fault is None:
            self._cycle += dt
            if self._cycle >= self.measuring_time - TIME_EPSILON:
                self._cycle = max(0.0, self._cycle - self.measuring_time) % self.measuring_time
                self.reading = (self.resistance_ohm, now)

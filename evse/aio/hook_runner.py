"""Await the integration hooks (evse.hooks) for the sans-IO SECC, which never awaits.

The SECC's synchronous seams ask "is the answer here?": `ScheduleProvider.schedules` and
`CertificateInstallationBackend.installation_data` return None while it is not, and the SECC
answers the EV EVSEProcessing=Ongoing and asks again at the EV's next request. The adapters
below start the hook's coroutine in a task at the first question and hand its result over at
a later one. Authorization is asked through the `RequestAuthorization` effect; the server
awaits `Authorizer.authorize` (`decide`) and delivers AuthorizationGranted/Denied. The meter
source is read by `MeterPoller` in a task; the poll loop uses its latest reading.
A -2 CertificateInstallation/Update the SECC holds (`RequestIso2Certificate`) is answered by
`provision_iso2` (an `Iso2CertificateSource` awaited in a task) or at once by `provision_local`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from evse.aio.tasks import cancel_task
from evse.hooks import (
    AuthorizationRequest,
    Authorizer,
    CertificateRequest,
    CertificateSource,
    Decision,
    Iso2CertificateSource,
    MeterReading,
    MeterSource,
    SchedulePolicy,
)
from evse.protocol import events as ev
from evse.protocol.config import InstallationAnswer, Iso2PncBackend, Iso2Provisioned
from evse.protocol.limits import EvLimits, EvseLimits
from evse.protocol.schedules import (
    ScheduleProvider,
    ScheduleRequest,
    Schedules,
    flat_schedules,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Pending(Generic[T]):
    """One hook call in flight: started at the first `poll`, its result taken at a later one."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.task: asyncio.Task[T] | None = None

    def poll(self, start: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """(done, result): not done -> the caller answers "not ready"; a hook that raised
        gives (True, None)."""
        task = self.task
        if task is None:
            async def call() -> T:
                return await start()

            self.task = asyncio.get_running_loop().create_task(call(), name=self.what)
            return False, None
        if not task.done():
            return False, None
        self.task = None  # the next question (renegotiation, a new request) asks again
        if task.cancelled():
            return True, None
        exc = task.exception()
        if exc is not None:
            log.error("%s hook failed: %r", self.what, exc)
            return True, None
        return True, task.result()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None


class AsyncSchedules:
    """A `ScheduleProvider` backed by an async `SchedulePolicy` (one per connection).

    Until the policy answers, None (the SECC: Ongoing). A policy that fails or answers None
    leaves the choice to `fallback` (the configured provider; without one the flat default
    schedule)."""

    def __init__(self, policy: SchedulePolicy, connector_id: str,
                 fallback: ScheduleProvider | None, epoch_offset: float) -> None:
        self.policy = policy
        self.connector_id = connector_id
        self.fallback = fallback
        self.epoch_offset = epoch_offset
        self._pending: _Pending[Schedules | None] = _Pending("schedule policy")

    def schedules_for(self, req: ScheduleRequest) -> Schedules | None:
        done, result = self._pending.poll(lambda: self.policy.schedules(self.connector_id, req))
        if not done:
            return None
        if result is not None:
            return result
        return ask_provider(self.fallback, req)

    def schedules(self, now: float, departure_time: int | None, ev_limits: EvLimits | None,
                  evse_limits: EvseLimits, bpt: bool) -> Schedules | None:
        return self.schedules_for(ScheduleRequest(
            now=now, timestamp=now + self.epoch_offset, departure_time=departure_time,
            ev_limits=ev_limits, evse_limits=evse_limits, bpt=bpt))


def ask_provider(provider: Any, req: ScheduleRequest) -> Schedules | None:
    """What the SECC's handlers do with a provider: `schedules_for` when it has one, else
    `schedules(...)`, and without a provider the flat default schedule."""
    if provider is None:
        return flat_schedules(req.now, req.departure_time, req.ev_limits, req.evse_limits,
                              req.bpt)
    detailed = getattr(provider, "schedules_for", None)
    if detailed is not None:
        result: Schedules | None = detailed(req)
        return result
    result = provider.schedules(req.now, req.departure_time, req.ev_limits, req.evse_limits,
                                req.bpt)
    return result


class ReportingSchedules:
    """The connection's schedule provider, telling `on_sent` every schedule it hands to the
    SECC for a ScheduleExchangeRes (the `ScheduleSent` session event). Failures pass through
    unchanged: the SECC's own fallback (default schedule + warning) stays in charge."""

    def __init__(self, inner: Any, on_sent: Callable[[Schedules], None],
                 epoch_offset: float) -> None:
        self.inner = inner
        self.on_sent = on_sent
        self.epoch_offset = epoch_offset

    def schedules_for(self, req: ScheduleRequest) -> Schedules | None:
        result = ask_provider(self.inner, req)
        if result is not None:
            self.on_sent(result)
        return result

    def schedules(self, now: float, departure_time: int | None, ev_limits: EvLimits | None,
                  evse_limits: EvseLimits, bpt: bool) -> Schedules | None:
        return self.schedules_for(ScheduleRequest(
            now=now, timestamp=now + self.epoch_offset, departure_time=departure_time,
            ev_limits=ev_limits, evse_limits=evse_limits, bpt=bpt))


class AsyncCertificates:
    """A `CertificateInstallationBackend` backed by an async `CertificateSource`."""

    def __init__(self, source: CertificateSource, connector_id: str) -> None:
        self.source = source
        self.connector_id = connector_id
        self._pending: _Pending[InstallationAnswer] = _Pending("certificate source")

    def installation_data(self, req: Any, *, timestamp: int, session_id: bytes
                          ) -> InstallationAnswer | None:
        request = CertificateRequest(self.connector_id, session_id, timestamp, req)
        done, answer = self._pending.poll(lambda: self.source.installation(request))
        if not done:
            return None
        if answer is None:  # the source failed: the EV is told, the session goes on
            return InstallationAnswer(response_code="WARNING_NoCertificateAvailable",
                                      reason="certificate source failed")
        return answer


def iso2_certificate_request(connector_id: str, request: ev.RequestIso2Certificate
                             ) -> CertificateRequest:
    return CertificateRequest(connector_id, request.session_id, request.timestamp,
                              request.message, standard="iso2", action=request.action)


def _iso2_failed(reason: str) -> ev.Event:
    return ev.Iso2CertificateAnswered(Iso2Provisioned(response_code="FAILED", reason=reason))


async def provision_iso2(source: Iso2CertificateSource, connector_id: str,
                         request: ev.RequestIso2Certificate) -> ev.Event:
    """The source's -2 answer as the SECC's input; a failing source is FAILED."""
    try:
        answer = await source.iso2_certificate(iso2_certificate_request(connector_id, request))
    except Exception as exc:
        log.error("connector %s: -2 certificate source failed: %r", connector_id, exc)
        return _iso2_failed(f"certificate source failed: {exc!r}")
    if not isinstance(answer, Iso2Provisioned):
        return _iso2_failed(f"certificate source answered a {type(answer).__name__}")
    return ev.Iso2CertificateAnswered(answer)


def provision_local(pnc: Iso2PncBackend | None, request: ev.RequestIso2Certificate
                    ) -> ev.Event:
    """The configured -2 provisioning service's answer, at once (no hook for -2)."""
    if pnc is None:
        return _iso2_failed("no -2 provisioning service")
    body = request.message.body
    try:
        if request.action == "Install":
            answer = pnc.install(body.certificate_installation_req,
                                 timestamp=request.timestamp)
        else:
            answer = pnc.update(body.certificate_update_req, timestamp=request.timestamp)
    except Exception as exc:
        log.error("-2 provisioning service failed: %r", exc)
        return _iso2_failed(f"provisioning service failed: {exc!r}")
    return ev.Iso2CertificateAnswered(answer)


async def decide(authorizer: Authorizer, request: AuthorizationRequest) -> ev.Event:
    """The authorizer's answer as the SECC's input; a failing authorizer denies."""
    try:
        decision: Decision = await authorizer.authorize(request)
    except Exception as exc:
        log.error("connector %s: authorizer failed, authorization denied: %r",
                  request.connector_id, exc)
        return ev.AuthorizationDenied(f"authorizer failed: {exc!r}")
    if decision.granted:
        return ev.AuthorizationGranted(decision.id_token)
    return ev.AuthorizationDenied(decision.reason or "denied")


class MeterPoller:
    """Reads a `MeterSource` for each connector in a task, every `interval` s; `latest` holds
    the last good reading (a failing or slow meter never blocks the poll loop)."""

    def __init__(self, source: MeterSource, connector_ids: list[str], interval: float) -> None:
        self.source = source
        self.connector_ids = connector_ids
        self.interval = interval
        self.latest: dict[str, MeterReading] = {}
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="meter-source")

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            for cid in self.connector_ids:
                try:
                    self.latest[cid] = await self.source.read(cid)
                except Exception as exc:
                    self.errors += 1
                    log.warning("connector %s: meter source failed: %r", cid, exc)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def apply(self, connector_id: str, event: ev.Event) -> ev.Event:
        """A MeasurementsUpdated with the meter source's registers (others unchanged)."""
        reading = self.latest.get(connector_id)
        if reading is None or not isinstance(event, ev.MeasurementsUpdated):
            return event
        return dataclasses.replace(event, imported_wh=reading.imported_wh,
                                   exported_wh=reading.exported_wh,
                                   meter_signature=reading.signature)

    async def close(self) -> None:
        await cancel_task(self._task)
        self._task = None

"""TLS on an accepted TCP connection, driven by us rather than by asyncio's SSL transport.

`TlsLayer` is the raw TCP protocol: it runs OpenSSL's server side through memory BIOs
(`SSLContext.wrap_bio`) and, once the handshake is done, hands the application protocol a
`TlsTransport` carrying the decrypted stream. Why not `create_server(ssl=...)` or
`loop.start_tls()`:

- asyncio keeps a 256 KiB receive buffer per SSL connection from the first byte, which is
  what made 1,500 stalled handshakes cost ~370 MB; here a handshake costs OpenSSL's own
  state plus at most `max_handshake_bytes` of input;
- asyncio aborts the socket when a handshake fails, before OpenSSL's fatal alert
  (handshake_failure, bad_certificate, ...) is written, so a refused EV only saw a bare TCP
  close; here the alert is written and the socket closed after it (a normal FIN);
- the failure reason (OpenSSL's, or the certificate verification message) and a handshake
  timeout are reported to the caller, which logs why the connection ended;
- the context can be chosen per connection from the ClientHello (`select_context`, see
  client_hello.py and tls_iso2.py): one port serves -2 over TLS 1.2 and -20 over TLS 1.3.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

from evse.aio import client_hello
from evse.aio.client_hello import ClientHello

READ_CHUNK = 16 * 1024  # one TLS record's plaintext at most


class TlsTransport(asyncio.Transport):
    """The application's view of a TLS connection (what `create_server(ssl=)` would give)."""

    def __init__(self, layer: TlsLayer) -> None:
        super().__init__()
        self._layer = layer
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._layer.write_plain(bytes(data))

    def close(self) -> None:
        """close_notify, then close the socket once the pending bytes are written."""
        if self._closing:
            return
        self._closing = True
        self._layer.close_tls()

    def abort(self) -> None:
        self._closing = True
        self._layer.raw.abort()

    def is_closing(self) -> bool:
        return self._closing or self._layer.raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._layer.sslobj
        if name == "sslcontext":
            return self._layer.context
        return self._layer.raw.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._layer.raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._layer.raw.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._layer.raw.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._layer.raw.pause_reading()

    def resume_reading(self) -> None:
        self._layer.raw.resume_reading()

    def is_reading(self) -> bool:
        return self._layer.raw.is_reading()

    def can_write_eof(self) -> bool:
        return False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._layer.app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._layer.app


def failure_reason(exc: BaseException) -> str:
    """A log line's worth of why OpenSSL refused a handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"bad vehicle certificate: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc.library or exc}"
    return f"TLS handshake failed: {exc!r}"


class TlsLayer(asyncio.Protocol):
    """Server-side TLS over a raw TCP transport (see module doc).

    `app` gets `connection_made(TlsTransport)` after the handshake, then the decrypted
    stream. `on_failure(reason)` is called once when the handshake does not finish (then
    the app never sees the connection); `on_lost(exc)` when the socket is gone before the
    app took it over."""

    def __init__(
        self,
        context: ssl.SSLContext,
        app: asyncio.Protocol,
        *,
        timeout: float,
        max_handshake_bytes: int,
        on_made: Callable[[asyncio.Transport], None],
        on_failure: Callable[[str], None],
        on_lost: Callable[[], None],
        on_bytes: Callable[[int], None] | None = None,
        select_context: Callable[[ClientHello | None], ssl.SSLContext] | None = None,
    ) -> None:
        self.context = context
        # choose the context from the ClientHello (bytes are held until it is complete)
        self.select_context = select_context
        self._hello = bytearray()
        self.app = app
        self.timeout = timeout
        self.max_handshake_bytes = max_handshake_bytes
        self.on_made = on_made
        self.on_failure = on_failure
        self.on_lost = on_lost
        self.on_bytes = on_bytes
        self.raw: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.sslobj: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._received = 0
        self._timer: asyncio.TimerHandle | None = None
        self._app_transport: TlsTransport | None = None
        self._failed = False
        self._read_error: Exception | None = None

    # -- raw side ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.raw = transport
        self.on_made(transport)
        if transport.is_closing():  # closed by admission at once
            return
        if self.select_context is None:
            self.sslobj = self.context.wrap_bio(self._in, self._out, server_side=True)
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        if self._app_transport is None:
            self._handshake(data)
        else:
            self._in.write(data)
            self._read_records()

    def eof_received(self) -> bool | None:
        if self._app_transport is not None:
            self._app_transport._closing = True
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._app_transport is not None:
            self.app.connection_lost(exc or self._read_error)
        else:
            self.on_lost()

    # -- handshake -----------------------------------------------------------------------

    def _choose(self, data: bytes) -> bool:
        """Hold the first bytes until the ClientHello is complete, then create the SSL object
        with the context chosen for it. False while more bytes are needed."""
        assert self.select_context is not None
        self._hello += data
        try:
            hello = client_hello.parse(bytes(self._hello))
        except client_hello.NotClientHello:
            hello = None  # the chosen context's OpenSSL refuses it with the proper alert
        else:
            if hello is None:
                return False
        self.context = self.select_context(hello)
        self.sslobj = self.context.wrap_bio(self._in, self._out, server_side=True)
        return True

    def _handshake(self, data: bytes) -> None:
        self._received += len(data)
        if self.on_bytes is not None:
            self.on_bytes(self._received)
        if self._received > self.max_handshake_bytes:
            self._fail(f"TLS handshake failed: more than {self.max_handshake_bytes} bytes "
                       "before it finished", alert=False)
            return
        if self.sslobj is None:
            if not self._choose(data):
                return
            data, self._hello = bytes(self._hello), bytearray()
        assert self.sslobj is not None
        self._in.write(data)
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._fail(failure_reason(exc), alert=True)
            return
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._app_transport = TlsTransport(self)
        self.app.connection_made(self._app_transport)
        if self._in.pending:  # application data sent right behind the Finished
            self._read_records()

    def _fail(self, reason: str, *, alert: bool) -> None:
        self._failed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.on_failure(reason)
        if alert:
            # OpenSSL has put its fatal alert in the outgoing BIO: write it, then close
            # (close() flushes the write buffer first, so the EV reads the alert)
            self._flush()
            self.raw.close()
        else:
            self.raw.abort()

    def _timed_out(self) -> None:
        self._timer = None
        if self._app_transport is None and not self._failed:
            self._fail(f"TLS handshake timeout ({self.timeout:g} s)", alert=False)

    # -- records -------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._out.pending and not self.raw.is_closing():
            self.raw.write(self._out.read())

    def _read_records(self) -> None:
        sslobj = self.sslobj
        assert sslobj is not None
        while not self._failed:
            try:
                chunk = sslobj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the EV's close_notify
                chunk = b""
            except ssl.SSLError as exc:
                self._failed = True
                self._read_error = exc
                self._flush()  # the alert, when OpenSSL wrote one
                self.raw.close()
                break
            if not chunk:  # the EV's close_notify (the read returns b"" or raises)
                if self._app_transport is not None:
                    self._app_transport.close()
                break
            self.app.data_received(chunk)
        self._flush()  # session tickets, key updates

    def write_plain(self, data: bytes) -> None:
        sslobj = self.sslobj
        if sslobj is None or self.raw.is_closing():
            return
        view = memoryview(data)
        while view:
            n = sslobj.write(view)  # memory BIO: never wants to read or write more
            view = view[n:]
        self._flush()

    def close_tls(self) -> None:
        sslobj = self.sslobj
        if sslobj is not None and not self.raw.is_closing():
            with contextlib.suppress(ssl.SSLError):
                sslobj.unwrap()  # writes close_notify; the EV's answer is not awaited
            self._flush()
        self.raw.close()

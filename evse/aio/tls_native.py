"""The checked native path: libssl calls on the SSL_CTX behind an `ssl.SSLContext`.

Only what no supported mechanism can do goes through here: the CA names of the
CertificateRequest (`SSL_CTX_set_client_CA_list`) and OCSP stapling
(`SSL_CTX_set_tlsext_status_cb` + `SSL_set_tlsext_status_ocsp_resp`). Python's `ssl` has no
setter for either and an OpenSSL configuration cannot express them.

The SSL_CTX pointer is the first field after the object header of CPython's PySSLContext
(Modules/_ssl.c, unchanged from 3.11 to 3.15). We use it only:
- on CPython versions whose layout was checked (`VERIFIED_LAYOUT`),
- with the libssl that `_ssl` itself links (dlsym on its handle; the version must match
  `ssl.OPENSSL_VERSION_NUMBER`),
- after a read-only validation: options, verify mode and protocol bounds read through the
  pointer equal what the Python object reports, and an options change made through Python is
  seen through the pointer. Nothing is written before that passes.
Every failure raises `NativeUnavailable` with the reason; callers fail closed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

VERIFIED_LAYOUT = frozenset({(3, 11), (3, 12), (3, 13), (3, 14), (3, 15)})

_SSL_CTRL_OPTIONS = 32  # SSL_CTX_get_options is a macro over this before OpenSSL 3.0
_SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63
_SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71
_SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB = 128
_SSL_CTRL_GET_MIN_PROTO_VERSION = 130
_SSL_CTRL_GET_MAX_PROTO_VERSION = 131
_SSL_TLSEXT_ERR_OK = 0
_SSL_TLSEXT_ERR_NOACK = 3
_VERIFY_BITS = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}

_STATUS_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# the callbacks must outlive their SSL_CTX: kept for the life of the process (one per context
# the charger builds at start, so this does not grow with connections)
_KEEP: list[Any] = []
_lock = threading.Lock()
_lib_cache: list[ctypes.CDLL] = []


class NativeUnavailable(Exception):
    """The checked native path cannot be used here (the reason is the message)."""


def libssl() -> ctypes.CDLL:
    """The libssl/libcrypto that CPython's `_ssl` links (not whatever else is installed)."""
    with _lock:
        if _lib_cache:
            return _lib_cache[0]
        if platform.python_implementation() != "CPython":
            raise NativeUnavailable(f"not CPython ({platform.python_implementation()})")
        try:
            import _ssl

            lib = ctypes.CDLL(_ssl.__file__)
            version = lib.OpenSSL_version_num
        except (ImportError, OSError, AttributeError) as exc:
            raise NativeUnavailable(f"libssl not reachable through _ssl: {exc}") from None
        version.restype = ctypes.c_ulong
        if version() != ssl.OPENSSL_VERSION_NUMBER:
            raise NativeUnavailable(f"libssl {version():#x} is not the one ssl reports "
                                    f"({ssl.OPENSSL_VERSION_NUMBER:#x})")
        _lib_cache.append(lib)
        return lib


def _fn(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise NativeUnavailable(f"libssl has no {name}") from None
    fn.restype, fn.argtypes = restype, list(argtypes)
    return fn


def _ctrl(lib: ctypes.CDLL) -> Any:
    return _fn(lib, "SSL_CTX_ctrl", ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
               ctypes.c_void_p)


def ssl_ctx_pointer(ctx: ssl.SSLContext) -> int:
    """The validated SSL_CTX* of `ctx`, or NativeUnavailable."""
    if platform.python_implementation() != "CPython" or \
            sys.version_info[:2] not in VERIFIED_LAYOUT:
        raise NativeUnavailable(f"PySSLContext layout not verified for "
                                f"{platform.python_implementation()} {platform.python_version()}")
    lib = libssl()
    ctrl = _ctrl(lib)
    verify_mode = _fn(lib, "SSL_CTX_get_verify_mode", ctypes.c_int, ctypes.c_void_p)
    if hasattr(lib, "SSL_CTX_get_options"):
        get_options = _fn(lib, "SSL_CTX_get_options", ctypes.c_uint64, ctypes.c_void_p)
    else:
        def get_options(p: int) -> int:
            return int(ctrl(p, _SSL_CTRL_OPTIONS, 0, None)) & 0xFFFFFFFFFFFFFFFF
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        raise NativeUnavailable("no SSL_CTX pointer where the layout puts it")

    def seen() -> tuple[int, int, int, int]:
        return (int(get_options(ptr)), int(verify_mode(ptr)) & 3,  # PEER | FAIL_IF_NO_PEER
                int(ctrl(ptr, _SSL_CTRL_GET_MIN_PROTO_VERSION, 0, None)),
                int(ctrl(ptr, _SSL_CTRL_GET_MAX_PROTO_VERSION, 0, None)))

    def expected() -> tuple[int, int, int, int]:
        def proto(v: ssl.TLSVersion) -> int:  # OpenSSL reports "no bound" as 0
            return 0 if v in (ssl.TLSVersion.MINIMUM_SUPPORTED,
                              ssl.TLSVersion.MAXIMUM_SUPPORTED) else int(v)
        return (int(ctx.options), _VERIFY_BITS[ctx.verify_mode], proto(ctx.minimum_version),
                proto(ctx.maximum_version))

    if seen() != expected():
        raise NativeUnavailable(f"SSL_CTX pointer check failed: read {seen()}, "
                                f"the SSLContext reports {expected()}")
    # a change made through Python must show through the pointer (then put it back)
    before = ctx.options
    ctx.options = before ^ ssl.OP_NO_TICKET
    try:
        moved = seen() == expected()
    finally:
        ctx.options = before
    if not moved or seen() != expected():
        raise NativeUnavailable("SSL_CTX pointer check failed: an options change made through "
                                "the SSLContext is not seen through the pointer")
    return int(ptr)


def set_client_ca_names(ctx: ssl.SSLContext, cafile: Path) -> None:
    """certificate_authorities of the CertificateRequest = the subjects in `cafile`."""
    ptr = ssl_ctx_pointer(ctx)
    lib = libssl()
    load = _fn(lib, "SSL_load_client_CA_file", ctypes.c_void_p, ctypes.c_char_p)
    set_list = _fn(lib, "SSL_CTX_set_client_CA_list", None, ctypes.c_void_p, ctypes.c_void_p)
    get_list = _fn(lib, "SSL_CTX_get_client_CA_list", ctypes.c_void_p, ctypes.c_void_p)
    names = load(os.fsencode(cafile))
    if not names:
        raise NativeUnavailable(f"no certificate names could be read from {cafile}")
    set_list(ptr, names)  # the SSL_CTX owns the list from here
    if get_list(ptr) != names:
        raise NativeUnavailable("the SSL_CTX does not report the CA name list just set")


def staple_ocsp(ctx: ssl.SSLContext, response: bytes) -> None:
    """Answer a client's status_request with `response` (DER OCSPResponse for our leaf)."""
    if not response:
        raise NativeUnavailable("empty OCSP response")
    ptr = ssl_ctx_pointer(ctx)
    lib = libssl()
    callback_ctrl = _fn(lib, "SSL_CTX_callback_ctrl", ctypes.c_long, ctypes.c_void_p,
                        ctypes.c_int, ctypes.c_void_p)
    ssl_ctrl = _fn(lib, "SSL_ctrl", ctypes.c_long, ctypes.c_void_p, ctypes.c_int,
                   ctypes.c_long, ctypes.c_void_p)
    malloc = _fn(lib, "CRYPTO_malloc", ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                 ctypes.c_int)
    free = _fn(lib, "CRYPTO_free", None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)
    ctrl = _ctrl(lib)

    def on_status_request(ssl_ptr: int | None, _arg: int | None) -> int:
        # called by OpenSSL (GIL taken by ctypes) only when the client sent status_request;
        # OpenSSL frees the buffer, so it must come from OPENSSL_malloc
        try:
            buf = malloc(len(response), b"evse/aio/tls_native.py", 0)
            if not buf:
                return _SSL_TLSEXT_ERR_NOACK
            ctypes.memmove(buf, response, len(response))
            if ssl_ctrl(ssl_ptr, _SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP, len(response),
                        buf) <= 0:
                free(buf, b"evse/aio/tls_native.py", 0)
                return _SSL_TLSEXT_ERR_NOACK
            return _SSL_TLSEXT_ERR_OK
        except Exception:  # never let an exception cross into OpenSSL
            return _SSL_TLSEXT_ERR_NOACK

    cb = _STATUS_CB(on_status_request)
    cb_ptr = ctypes.cast(cb, ctypes.c_void_p).value
    if callback_ctrl(ptr, _SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB, cb_ptr) <= 0:
        raise NativeUnavailable("SSL_CTX_set_tlsext_status_cb failed")
    got = ctypes.c_void_p()
    ctrl(ptr, _SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB, 0, ctypes.byref(got))
    if got.value != cb_ptr:
        raise NativeUnavailable("the SSL_CTX does not report the OCSP status callback just set")
    _KEEP.append(cb)

"""The ISO 15118-20 TLS profile on an `ssl.SSLContext`: applied through supported mechanisms,
then verified by handshakes in memory.

The profile: TLS 1.3 only; suites TLS_AES_256_GCM_SHA384 then TLS_CHACHA20_POLY1305_SHA256;
groups secp521r1 (P-521) and X448; signature algorithms ecdsa_secp521r1_sha512 and ed448.

Mechanisms, per part, best first:
- the stdlib setters where the running Python has them (`set_ciphersuites`, `set_groups`,
  `set_server_sigalgs` + `set_client_sigalgs`; Python 3.15 and later);
- otherwise an OpenSSL configuration profile: an `ssl_conf` section whose `system_default`
  holds Ciphersuites / Groups / SignatureAlgorithms, loaded with libcrypto's public
  `CONF_modules_load_file` just around the construction of the context (SSL_CTX_new applies
  `system_default` when it creates the SSL_CTX); right after, the system's own `ssl_conf`
  (copied from the process's openssl.cnf) or a neutral one without `system_default` replaces
  ours. Other contexts of the process (MQTT, the simulated EV, OCPP) therefore keep OpenSSL's
  and the system's defaults. Only the ssl_conf module is touched (no CONF_modules_unload, which
  would also finish the providers and engines the system config set up). A lock serialises
  this; contexts are built at start.
OpenSSL ignores a configuration value it does not understand, hence `self_test`: probe clients
that must be refused (TLS 1.2, AES-128-GCM only, X25519 only, P-256 only) and accepted (X448
only, P-521 only), plus two throw-away servers built the same way that must refuse to sign
with an Ed25519 key and accept an Ed448 one (the signature algorithms).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evse.aio import tls_native

SUITES_ISO20 = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
GROUPS_ISO20 = ("P-521", "X448")  # OpenSSL's names for secp521r1 and x448
SIGALGS_ISO20 = ("ecdsa_secp521r1_sha512", "ed448")

STDLIB = "stdlib"
OPENSSL_CONFIG = "openssl-config"
# OpenSSL configuration commands (SSL_CONF_cmd names) per part
CONF_KEYS = {"suites": "Ciphersuites", "groups": "Groups", "sigalgs": "SignatureAlgorithms"}

_lock = threading.RLock()
log = logging.getLogger("evse.tls")


@dataclass(frozen=True)
class Settings:
    """What to restrict; None leaves OpenSSL's default for that part."""

    suites: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None
    sigalgs: tuple[str, ...] | None = None

    def parts(self) -> dict[str, str]:
        values = {"suites": self.suites, "groups": self.groups, "sigalgs": self.sigalgs}
        return {k: ":".join(v) for k, v in values.items() if v is not None}


ISO20 = Settings(SUITES_ISO20, GROUPS_ISO20, SIGALGS_ISO20)


class MechanismUnavailable(Exception):
    """No supported way to apply a part of the profile here (the reason is the message)."""


def _stdlib_setters(ctx: Any, part: str) -> tuple[Any, ...]:
    names = {"suites": ("set_ciphersuites",), "groups": ("set_groups",),
             "sigalgs": ("set_server_sigalgs", "set_client_sigalgs")}[part]
    setters = tuple(getattr(ctx, n, None) for n in names)
    return setters if all(setters) else ()


@dataclass(frozen=True)
class Applied:
    """Per part of the profile: the mechanism that applied it, or why none could."""

    mechanisms: dict[str, str]  # part -> STDLIB | OPENSSL_CONFIG
    errors: dict[str, str]  # part -> reason


def build(protocol: ssl._SSLMethod, settings: Settings) -> tuple[ssl.SSLContext, Applied]:
    """A new context with `settings` applied (stdlib setters first, else the configuration)."""
    wanted = settings.parts()
    by_setter = {p: v for p, v in wanted.items() if _stdlib_setters(ssl.SSLContext, p)}
    by_config = {p: v for p, v in wanted.items() if p not in by_setter and p in CONF_KEYS}
    mechanisms: dict[str, str] = {}
    errors: dict[str, str] = {}
    ctx: ssl.SSLContext | None = None
    if by_config:
        try:
            with openssl_profile({CONF_KEYS[p]: v for p, v in by_config.items()}):
                ctx = ssl.SSLContext(protocol)
            mechanisms.update(dict.fromkeys(by_config, OPENSSL_CONFIG))
        except MechanismUnavailable as exc:
            errors.update(dict.fromkeys(by_config, str(exc)))
    if ctx is None:
        ctx = ssl.SSLContext(protocol)
    for part, value in by_setter.items():
        try:
            for setter in _stdlib_setters(ctx, part):
                setter(value)
            mechanisms[part] = STDLIB
        except (ssl.SSLError, ValueError) as exc:
            errors[part] = f"{type(exc).__name__}: {exc}"
    for part in wanted:
        if part not in mechanisms and part not in errors:
            errors[part] = "no stdlib setter and no OpenSSL configuration command"
    return ctx, Applied(mechanisms, errors)


# -- the OpenSSL configuration profile -------------------------------------------------------

def _conf_functions() -> tuple[Any, Any, Any]:
    try:
        lib = tls_native.libssl()
        load = lib.CONF_modules_load_file
        unload = lib.CONF_modules_unload
        clear = lib.ERR_clear_error
    except tls_native.NativeUnavailable as exc:
        raise MechanismUnavailable(str(exc)) from None
    except AttributeError as exc:
        raise MechanismUnavailable(f"libcrypto lacks the configuration API: {exc}") from None
    load.argtypes, load.restype = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong], ctypes.c_int
    unload.argtypes, unload.restype = [ctypes.c_int], None
    clear.argtypes, clear.restype = [], None
    return load, unload, clear


class _ConfValue(ctypes.Structure):  # CONF_VALUE, public in openssl/conf.h
    _fields_ = [("section", ctypes.c_char_p), ("name", ctypes.c_char_p),
                ("value", ctypes.c_char_p)]


def _conf_escape(value: str) -> str:
    return "".join("\\" + c if c in "\\$#\"'" else c for c in value)


def _system_ssl_conf() -> str | None:
    """The process's OpenSSL config reduced to its `ssl_conf` sections (values expanded), as a
    config text whose appname `evse_restore` loads only the ssl_conf module; None if the
    config has no ssl_conf (then there is nothing to put back)."""
    try:
        lib = tls_native.libssl()
        default_file = lib.CONF_get1_default_config_file
        nconf_new, nconf_load, nconf_free = lib.NCONF_new, lib.NCONF_load, lib.NCONF_free
        get_string, get_section = lib.NCONF_get_string, lib.NCONF_get_section
        sk_num, sk_value, crypto_free = lib.OPENSSL_sk_num, lib.OPENSSL_sk_value, lib.CRYPTO_free
    except (tls_native.NativeUnavailable, AttributeError):
        return None
    default_file.argtypes, default_file.restype = [], ctypes.c_void_p
    nconf_new.argtypes, nconf_new.restype = [ctypes.c_void_p], ctypes.c_void_p
    nconf_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_long)]
    nconf_load.restype = ctypes.c_int
    nconf_free.argtypes, nconf_free.restype = [ctypes.c_void_p], None
    get_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    get_string.restype = ctypes.c_char_p
    get_section.argtypes, get_section.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p
    sk_num.argtypes, sk_num.restype = [ctypes.c_void_p], ctypes.c_int
    sk_value.argtypes, sk_value.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_void_p
    crypto_free.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    crypto_free.restype = None
    raw = default_file()
    if not raw:
        return None
    path = ctypes.string_at(raw)
    crypto_free(raw, b"tls_profile", 0)

    def section(conf: int, name: bytes) -> list[tuple[str, str]]:
        stack = get_section(conf, name)
        if not stack:
            return []
        items = (ctypes.cast(sk_value(stack, i), ctypes.POINTER(_ConfValue)).contents
                 for i in range(sk_num(stack)))
        return [(v.name.decode(), v.value.decode()) for v in items if v.name and v.value]

    conf = nconf_new(None)
    try:
        line = ctypes.c_long()
        if not conf or nconf_load(conf, path, ctypes.byref(line)) != 1:
            return None
        init = get_string(conf, None, b"openssl_conf")
        ssl_section = get_string(conf, init, b"ssl_conf") if init else None
        if not ssl_section:
            return None
        text = ["evse_restore = evse_restore_init", "[evse_restore_init]",
                "ssl_conf = evse_restore_ssl", "[evse_restore_ssl]"]
        bodies = []
        for i, (name, target) in enumerate(section(conf, ssl_section)):
            text.append(f"{name} = evse_restore_{i}")
            bodies.append([f"[evse_restore_{i}]"] + [
                f"{k} = {_conf_escape(v)}" for k, v in section(conf, target.encode())])
        return "\n".join(text + [line for body in bodies for line in body]) + "\n"
    finally:
        nconf_free(conf)
        lib.ERR_clear_error()  # a missing key leaves an error on the queue


# loaded when the system config has no ssl_conf: an ssl_conf module without system_default
# (its one named section is never applied: nothing calls SSL_CTX_config with that name)
_NEUTRAL_SSL_CONF = ("evse_restore = evse_restore_init\n[evse_restore_init]\n"
                     "ssl_conf = evse_restore_ssl\n[evse_restore_ssl]\n"
                     "evse_unused = evse_unused_cmds\n[evse_unused_cmds]\n"
                     "MinProtocol = TLSv1.2\n")


@contextlib.contextmanager
def openssl_profile(commands: dict[str, str]) -> Iterator[None]:
    """SSL contexts created inside get `commands` (SSL_CONF_cmd names -> values).

    Only the ssl_conf module is touched: loading a config replaces the ssl_conf names as a
    whole, so ours goes in, and afterwards the system's (or a neutral one) replaces ours.
    CONF_modules_unload is avoided: it would also finish the system config's providers and
    engines modules (an HSM engine, a provider activated there)."""
    load, unload, clear = _conf_functions()
    body = "".join(f"{k} = {v}\n" for k, v in commands.items())
    text = ("evse_iso20_tls = evse_init\n[evse_init]\nssl_conf = evse_ssl\n"
            "[evse_ssl]\nsystem_default = evse_system_default\n"
            f"[evse_system_default]\n{body}")
    with _lock, tempfile.TemporaryDirectory(prefix="evse-tls-") as tmp:
        path = Path(tmp) / "iso20.cnf"
        path.write_text(text)
        if load(os.fsencode(path), b"evse_iso20_tls", 0) != 1:
            clear()
            _put_back_ssl_conf(load, unload, clear, Path(tmp))
            raise MechanismUnavailable("CONF_modules_load_file refused the TLS profile")
        try:
            yield
        finally:
            _put_back_ssl_conf(load, unload, clear, Path(tmp))


def _put_back_ssl_conf(load: Any, unload: Any, clear: Any, tmp: Path) -> None:
    path = tmp / "restore.cnf"
    path.write_text(_system_ssl_conf() or _NEUTRAL_SSL_CONF)
    if load(os.fsencode(path), b"evse_restore", 0) == 1:
        return
    clear()
    # last resort, so that our profile does not govern every later context of the process
    log.warning("cannot put the system's TLS configuration back; unloading all OpenSSL "
                "configuration modules")
    unload(0)


# -- verification ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SelfTest:
    failures: tuple[str, ...]  # "<part>: <what happened>"
    ms: float


# (label, client settings, TLS 1.2 only, must be accepted, part it proves)
_PROBES: tuple[tuple[str, Settings, bool, bool, str], ...] = (
    ("TLS 1.2", Settings(), True, False, "protocol"),
    ("AES-128-GCM only", Settings(suites=("TLS_AES_128_GCM_SHA256",)), False, False, "suites"),
    ("X25519 only", Settings(groups=("X25519",)), False, False, "groups"),
    ("P-256 only", Settings(groups=("P-256",)), False, False, "groups"),
    ("X448 only", Settings(groups=("X448",)), False, True, "groups"),
    ("P-521 only", Settings(groups=("P-521",)), False, True, "groups"),
)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str | None:
    """One TLS handshake in memory; None when both ends finished, else the error."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    cli = client.wrap_bio(c_in, c_out, server_hostname=None)
    done = {"server": False, "client": False}
    for _ in range(8):  # a TLS 1.3 handshake needs 2-3 flights
        for name, end, out, peer_in in (("client", cli, c_out, s_in),
                                        ("server", srv, s_out, c_in)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    return f"{name}: {exc.reason or exc}"
            if out.pending:
                peer_in.write(out.read())
        if all(done.values()):
            return None
    return "handshake did not finish"


def _probe_client(settings: Settings, tls12: bool) -> ssl.SSLContext:
    ctx, applied = build(ssl.PROTOCOL_TLS_CLIENT, settings)
    if applied.errors:
        raise MechanismUnavailable("cannot restrict the probe client: " + "; ".join(
            f"{part}: {why}" for part, why in applied.errors.items()))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _sigalg_probe_server(key_type: str, tmp: Path) -> ssl.SSLContext:
    """A throw-away server with the profile and a self-signed Ed25519 or Ed448 key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
    from cryptography.x509.oid import NameOID

    key: Any = (ed25519.Ed25519PrivateKey if key_type == "ed25519"
                else ed448.Ed448PrivateKey).generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"evse profile probe {key_type}")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(minutes=5)).sign(key, None))
    cert_file, key_file = tmp / f"{key_type}.pem", tmp / f"{key_type}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx, applied = build(ssl.PROTOCOL_TLS_SERVER, ISO20)
    if "sigalgs" in applied.errors:
        raise MechanismUnavailable(applied.errors["sigalgs"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def self_test(server: ssl.SSLContext) -> SelfTest:
    """Probe `server` (a server context with its certificate, no client authentication yet)
    and the signature-algorithm restriction; each failure names its part."""
    t0 = time.perf_counter()
    failures: list[str] = []
    for label, settings, tls12, accept, part in _PROBES:
        try:
            client = _probe_client(settings, tls12)
        except MechanismUnavailable as exc:
            failures.append(f"{part}: no {label} probe client to verify with ({exc})")
            continue
        error = handshake(server, client)
        if accept and error is not None:
            failures.append(f"{part}: a client offering {label} was refused ({error})")
        elif not accept and error is None:
            failures.append(f"{part}: a client offering {label} was accepted")
    try:
        with tempfile.TemporaryDirectory(prefix="evse-tls-probe-") as tmp:
            default_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            default_client.check_hostname = False
            default_client.verify_mode = ssl.CERT_NONE
            if handshake(_sigalg_probe_server("ed25519", Path(tmp)), default_client) is None:
                failures.append("sigalgs: a server with the profile signed with Ed25519")
            error = handshake(_sigalg_probe_server("ed448", Path(tmp)), default_client)
            if error is not None:
                failures.append(f"sigalgs: a server with the profile could not sign with "
                                f"Ed448 ({error})")
    except MechanismUnavailable as exc:
        failures.append(f"sigalgs: cannot verify ({exc})")
    return SelfTest(tuple(failures), (time.perf_counter() - t0) * 1e3)

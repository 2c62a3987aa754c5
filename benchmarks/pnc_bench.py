"""Plug & Charge benchmark: how long the SECC takes to verify a PnC AuthorizationReq.

    python benchmarks/pnc_bench.py            # 300 samples per row
    python benchmarks/pnc_bench.py --quick    # smoke run: 20 samples

For ECDSA secp521r1 and Ed448 (test PKI generated at start, in memory), rows:
- decode: the EXI AuthorizationReq (with header Signature and a 3-certificate contract chain)
  into message objects;
- signature: `evse.security.signatures.verify` alone (fragment encoding of
  PnC_AReqAuthorizationMode + SHA-512 + SignedInfo encoding + the signature check);
- chain: `validate_chain` alone (parse 3 DER certificates, 3 signature checks, validity,
  constraints, algorithms);
- verify_authorization (new chain): the whole verifier call (chain + eMAID + signature) by a
  verifier that has not seen the chain; (repeat): the same request again, as the EV repeats
  it while the SECC answers Ongoing (the chain's signatures are cached, validity is not);
- handler: `SeccConnection.receive_data` of the framed request to the AuthorizationRes
  (decode, verifier, handler, encode) in a fresh session and verifier per sample;
- TLS 1.3 handshake (mutual): a new loopback connection with the ISO 15118-20 contexts of
  evse/aio/tls.py (SECC chain, vehicle certificate requested and verified) until the server's
  first byte arrives; client and server run in this one process, so the time is both sides'
  CPU (at most 100 samples).

Times are wall-clock per call (time.perf_counter_ns), median and p99 in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import exi_codec  # noqa: E402
from certs.pnc_pki import make_pnc_pki  # noqa: E402
from evse.protocol.config import SeccConfig  # noqa: E402
from evse.protocol.secc import SeccConnection  # noqa: E402
from evse.protocol.v2gtp import PayloadType, encode_frame  # noqa: E402
from evse.security import PncVerifier  # noqa: E402
from evse.security.chains import validate_chain  # noqa: E402
from evse.security.signatures import SignedElement, sign, verify  # noqa: E402
from exi_codec.schemas import iso20, sap  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def measure(fn: Callable[[], Any], samples: int) -> tuple[float, float]:
    fn()  # warm up
    times = []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1000.0)
    return statistics.median(times), percentile(times, 99)


class FixedRng:
    def __init__(self, challenge: bytes) -> None:
        self.challenge = challenge
        self.n = 0

    def token_bytes(self, n: int) -> bytes:
        if n == 16:
            return self.challenge
        self.n += 1
        return self.n.to_bytes(n, "big")


def frame(msg: Any, payload_type: PayloadType = PayloadType.COMMON) -> bytes:
    return encode_frame(payload_type, exi_codec.encode(msg))


def rows_for(algorithm: str, samples: int) -> list[tuple[str, int, float, float]]:
    pki = make_pnc_pki(algorithm)
    ts = int(pki.now.timestamp())
    challenge = bytes(range(16))
    mode = iso20.PnC_AReqAuthorizationModeType(
        id="id1",
        gen_challenge=challenge,
        contract_certificate_chain=iso20.ContractCertificateChainType(
            certificate=pki.contract.leaf_der,
            sub_certificates=iso20.SubCertificatesType(certificate=pki.contract.sub_ders),
        ),
    )
    element = SignedElement("PnC_AReqAuthorizationMode", mode)
    signature = sign(pki.contract.key, element)

    def request(session_id: bytes) -> Any:
        return iso20.AuthorizationReq(
            header=iso20.MessageHeaderType(session_id=session_id, time_stamp=ts,
                                           signature=signature),
            selected_authorization_service="PnC",
            pnc_a_req_authorization_mode=mode,
        )

    data = exi_codec.encode(request(bytes(8)))
    req = exi_codec.decode(data, "iso20")
    key = pki.contract.leaf.cert.public_key()
    verifier = PncVerifier(mo_roots=pki.mo_roots)
    out = []

    def decode() -> None:
        exi_codec.decode(data, "iso20")

    def signature_only() -> None:
        element = SignedElement("PnC_AReqAuthorizationMode", req.pnc_a_req_authorization_mode)
        verify(req.header.signature, [element], key)

    def chain_only() -> None:
        validate_chain(pki.contract.leaf_der, pki.contract.sub_ders, pki.mo_roots, pki.now)

    def whole() -> None:  # a new EV: nothing cached
        fresh = PncVerifier(mo_roots=pki.mo_roots)
        verdict = fresh.verify_authorization(req, timestamp=ts, session_id=bytes(8))
        assert verdict.ok, verdict

    def repeat() -> None:  # the EV repeats its request while we answer Ongoing
        verdict = verifier.verify_authorization(req, timestamp=ts, session_id=bytes(8))
        assert verdict.ok, verdict

    app = sap.supportedAppProtocolReq(app_protocol=(sap.AppProtocolType(
        protocol_namespace="urn:iso:std:iso:15118:-20:DC", version_number_major=1,
        version_number_minor=0, schema_id=1, priority=1),))

    def prepared() -> tuple[SeccConnection, bytes]:
        config = SeccConfig(offer_pnc=True, pnc_verifier=PncVerifier(mo_roots=pki.mo_roots),
                            pnc_auto_authorize=True)
        conn = SeccConnection(config, tls=True, now=0.0, rng=FixedRng(challenge),
                              epoch_offset=ts)
        conn.receive_data(frame(app, PayloadType.SAP), 0.0)
        hdr = iso20.MessageHeaderType(session_id=bytes(8), time_stamp=ts)
        effects = conn.receive_data(frame(iso20.SessionSetupReq(header=hdr, evccid="EV1")),
                                    0.01)
        assert conn.session is not None
        sid = conn.session.session_id
        hdr = iso20.MessageHeaderType(session_id=sid, time_stamp=ts)
        effects = conn.receive_data(frame(iso20.AuthorizationSetupReq(header=hdr)), 0.02)
        assert effects
        return conn, frame(request(sid))

    handler_times = []
    for i in range(samples + 1):
        conn, wire = prepared()
        t0 = time.perf_counter_ns()
        effects = conn.receive_data(wire, 0.03)
        if i:
            handler_times.append((time.perf_counter_ns() - t0) / 1000.0)
        res = exi_codec.decode(effects[-1].data[8:], "iso20")
        assert res.response_code == "OK", res

    size = len(data)
    out.append(("decode AuthorizationReq", size, *measure(decode, samples)))
    out.append(("signature", size, *measure(signature_only, samples)))
    out.append(("chain (3 certificates)", size, *measure(chain_only, samples)))
    out.append(("verify_authorization (new chain)", size, *measure(whole, samples)))
    out.append(("verify_authorization (repeat)", size, *measure(repeat, samples)))
    out.append(("handler (bytes in -> AuthorizationRes)", size,
                statistics.median(handler_times), percentile(handler_times, 99)))
    return out


def tls_row(algorithm: str, samples: int) -> tuple[str, int, float, float]:
    from evse.aio.tls import ev_context, secc_context

    pki = make_pnc_pki(algorithm)
    with tempfile.TemporaryDirectory(prefix="pnc-bench-") as tmp:
        files = pki.write(tmp)
        server_ctx = secc_context(files["secc"], files["secc_key"],
                                  vehicle_roots=files["oem_root"]).context
        client_ctx = ev_context(files["v2g_root"], cert=files["vehicle"],
                                key=files["vehicle_key"]).context

    async def run() -> list[float]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.write(b"x")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        times: list[float] = []
        for i in range(min(samples, 100) + 1):
            t0 = time.perf_counter_ns()
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                           server_hostname="")
            await reader.readexactly(1)
            if i:  # the first one warms up
                times.append((time.perf_counter_ns() - t0) / 1000.0)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return times

    times = asyncio.run(run())
    return ("TLS 1.3 handshake (mutual, loopback)", 0, statistics.median(times),
            percentile(times, 99))


def profile_row(algorithm: str, samples: int) -> tuple[str, int, float, float]:
    """secc_context at start: the -20 profile applied and verified (self-test handshakes),
    CA names and OCSP stapling set."""
    from evse.aio.tls import secc_context

    pki = make_pnc_pki(algorithm)
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pnc-bench-") as tmp:
        files = pki.write(tmp)
        for _ in range(min(samples, 30)):
            t0 = time.perf_counter_ns()
            tls = secc_context(files["secc"], files["secc_key"], vehicle_roots=files["oem_root"],
                               ocsp_response=files["ocsp_secc"])
            times.append((time.perf_counter_ns() - t0) / 1000.0)
            assert tls.profile_complete
    return ("secc_context (TLS profile + self-test)", 0, statistics.median(times),
            percentile(times, 99))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20 samples per row")
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    samples = 20 if args.quick else args.samples
    import cryptography

    print(f"Python {platform.python_version()} on {platform.machine()}, cryptography "
          f"{cryptography.__version__}, exi_codec engine {exi_codec.ENGINE}, "
          f"{samples} samples per row")
    header = f"{'algorithm':10} {'step':40} {'bytes':>6} {'median us':>10} {'p99 us':>10}"
    print(header)
    print("-" * len(header))
    for algorithm in ("secp521r1", "ed448"):
        for step, size, median, p99 in [*rows_for(algorithm, samples),
                                        tls_row(algorithm, samples),
                                        profile_row(algorithm, samples)]:
            print(f"{algorithm:10} {step:40} {size:6d} {median:10.1f} {p99:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

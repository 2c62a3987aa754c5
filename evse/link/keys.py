"""Network keys for the SLAC match: a fresh NMK per match and the NID derived from it.

The NID derivation is the HomePlug AV one, as described in Qualcomm Atheros open-plc-utils
(`key/HPAVKeyNID.c`: "hash the NMK then rehash the digest 4 times per HomePlug AV
Specification; no salt is used"): SHA-256 over the 16-byte NMK, then SHA-256 over the digest
four more times (PBKDF1-style, 5 rounds in all); the NID is the first 7 bytes with the last
byte shifted right by 4, which leaves 52 + 2 bits and puts the 2-bit security level in bits
4-5 of the last byte. ISO 15118-3 wants security level 0 ("simple connect"): those bits clear.
"""

from __future__ import annotations

import hashlib

NMK_LEN = 16
NID_LEN = 7
NID_ROUNDS = 5


def nid_from_nmk(nmk: bytes, security_level: int = 0) -> bytes:
    if len(nmk) != NMK_LEN:
        raise ValueError(f"an NMK is {NMK_LEN} bytes, not {len(nmk)}")
    if not 0 <= security_level <= 3:
        raise ValueError("the security level has 2 bits")
    digest = nmk
    for _ in range(NID_ROUNDS):
        digest = hashlib.sha256(digest).digest()
    nid = bytearray(digest[:NID_LEN])
    nid[-1] = (nid[-1] >> 4) | (security_level << 4)
    return bytes(nid)

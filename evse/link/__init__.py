"""sans-IO link layer: the control pilot lifecycle (IEC 61851-1) and SLAC (ISO 15118-3).

No asyncio, socket, clock or hal here: time enters as `now: float`, readings and frames enter
as arguments, and every effect is returned (see docs/link.md). The asyncio adapter is
`evse.aio.slac_link`.
"""

"""ISO 15118-2 (DC and AC): EIM implemented; Plug & Charge has seams, not an implementation.

Namespace urn:iso:15118:2:2013:MsgDef, schema version 2.0, every message a V2G_Message in
V2GTP payload type 0x8001, plain TCP (TLS 1.2 comes with Plug & Charge). The package has the
shape of `evse.protocol.iso20`:

- `states.py`: the transition table (`TRANSITIONS[state][request][outcome] -> state`);
- `handlers/`: one pure `handle(req, session, inputs) -> (res, effects)` per message pair
  (Body elements in and out);
- `timeouts.py`: the -2 timers (sequence, performance, Ongoing, CableCheck, ...);
- `messages.py`: the request lookup, V2G_Message wrapping and the FAILED response of each
  request; `values.py`: PhysicalValue <-> SI; `errors.py`: -2-only response codes;
- `session.py`: `Iso2Session`, the -2 state around the common `Session` record;
- `machine.py`: `Iso2Machine`, the `StandardMachine` registered as
  `evse.protocol.standards.STANDARDS["iso2"]`.

Plug & Charge seams: `handlers/services.payment_options` (offer "Contract" over TLS),
`handlers/authorization` (PaymentDetails, CertificateInstallation/Update and the
AuthorizationReq's Id/GenChallenge), `Iso2Session.receipt_requested` (MeteringReceipt).
"""

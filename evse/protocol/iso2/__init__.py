"""ISO 15118-2 (DC and AC, EIM and Plug & Charge): not implemented yet.

Namespace urn:iso:15118:2:2013:MsgDef, schema version 2.0, every message as V2GTP payload
type 0x8001, TLS 1.2 or plain TCP. The package must take the shape of `evse.protocol.iso20`:

- `states.py`: the transition table (`TRANSITIONS[state][request][outcome] -> state`);
- `handlers/`: one pure `handle(req, session, inputs) -> (res, effects)` per message pair;
- `timeouts.py`: the -2 timers (sequence, performance, Ongoing, CableCheck, ...);
- `messages.py`: the request lookup and the FAILED response of each request;
- `machine.py`: a class implementing `evse.protocol.machine.StandardMachine`, built from a
  `MachineContext`; register its factory in `evse.protocol.standards.STANDARDS["iso2"]`
  (that lifts the "not implemented yet" config error).
"""

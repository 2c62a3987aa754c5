"""DIN SPEC 70121 (DC, external payment): not implemented yet.

Namespace urn:din:70121:2012:MsgDef, schema version 2.0, every message as V2GTP payload type
0x8001, plain TCP only. The package must take the shape of `evse.protocol.iso20`:

- `states.py`: the transition table (`TRANSITIONS[state][request][outcome] -> state`);
- `handlers/`: one pure `handle(req, session, inputs) -> (res, effects)` per message pair;
- `timeouts.py`: the DIN timers (sequence, performance, Ongoing, CableCheck, ...);
- `messages.py`: the request lookup and the FAILED response of each request;
- `machine.py`: a class implementing `evse.protocol.machine.StandardMachine`, built from a
  `MachineContext`; register its factory in `evse.protocol.standards.STANDARDS["din"]`
  (that lifts the "not implemented yet" config error).
"""

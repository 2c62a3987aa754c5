"""DIN SPEC 70121 (DC, external payment): the SECC's DIN session.

Namespace urn:din:70121:2012:MsgDef, schema version 2.0, every message as V2GTP payload type
0x8001, plain TCP only. The package has the shape of `evse.protocol.iso20`:

- `states.py`: the transition table (`TRANSITIONS[state][request][outcome] -> state`);
- `handlers/`: one pure `handle(req, session, inputs) -> (res, effects)` per message pair;
- `timeouts.py`: the DIN performance budgets (the shared timers come from SeccConfig);
- `messages.py`: the request lookup, V2G_Message wrapping and the FAILED response of each
  request;
- `session.py`: `DinSession`, DIN's progress beside the common `Session` record;
- `units.py`: PhysicalValue <-> SI floats (and times in any unit);
- `machine.py`: `DinMachine`, the `evse.protocol.machine.StandardMachine` registered in
  `evse.protocol.standards.STANDARDS["din"]`.
"""

"""ISO 15118-20 (DC and AC, EIM and Plug & Charge), the shape every standard package follows:

- `states.py`: the transition table, every legal (state, request) pair as data;
- `handlers/`: one pure `handle(req, session, inputs) -> (res, effects)` per message pair;
- `timeouts.py`: every timer of the standard with its requirement id (when verified);
- `messages.py`: the request/response lookup (schema, payload type, FAILED responses);
- `machine.py`: `Iso20Machine`, the `evse.protocol.machine.StandardMachine` that
  `SeccConnection` hands a -20 connection to (registered in `evse.protocol.standards`).
"""

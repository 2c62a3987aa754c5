"""Numbering shared by the generator (tools/exigen) and both engines.

A generated schema module holds:
- DATATYPES: tuples (kind, ...): STRING (min_len, max_len|None), BOOL, UINT (min, max|None),
  INT (min|None, max|None), NBIT (bits, min, max), ENUM (bits, enum class), HEX/B64 (min_len,
  max_len|None), DECIMAL.
- GRAMMARS: (class|None, field names, list flags, states); a state is (bits, productions) and a
  production (kind, field, arg, next): arg is a datatype index for AT/CH and a grammar index for
  SE. A grammar whose class is None is a simple type's: CH value then EE.
- DOCUMENT / FRAGMENT / XMLDSIG_FRAGMENT: (uri, local name, grammar[, root class]) in EXI order.
"""

AT, SE, EE, CH, SE_ANY, CH_UNTYPED = range(6)
DT_STRING, DT_BOOL, DT_UINT, DT_INT, DT_NBIT, DT_ENUM, DT_HEX, DT_B64, DT_DECIMAL = range(9)

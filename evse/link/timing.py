"""Every timer and count of the link layer (ISO 15118-3 SLAC, IEC 61851-1 pilot), in seconds.

No copy of ISO 15118-3 was available while writing this: the names are the standard's
parameter names, the values those of EVerest libslac (`include/slac/iso15118_consts.hpp`,
which gives the standard's allowed range in comments) and of DESIGN.md section 5b. Each
value can be overridden per instance (`SlacConfig`, `PilotConfig`) for labs and tests.
"""

from __future__ import annotations

# From the 5 % duty (state B, digital communication) to the first CM_SLAC_PARM.REQ. The
# standard allows the EVSE 20 s to 50 s; we take the lower end so a car without (working)
# PLC falls back quickly; libslac uses 40 s.
TT_EVSE_SLAC_INIT = 20.0
# After the init timeout the EVSE may force state E/F for at least this long, then retry.
T_STEP_EF = 4.0
# The EV retries a failed matching this many times (so 1 + C_EV_MATCH_RETRY attempts).
C_EV_MATCH_RETRY = 2
# Our answer to CM_SLAC_PARM.REQ and CM_SLAC_MATCH.REQ must leave within this; it is also
# how long we wait for the EV's CM_ATTEN_CHAR.RSP before repeating CM_ATTEN_CHAR.IND.
TT_MATCH_RESPONSE = 0.2
# Longest gap between two messages of the EV's sequence (PARM.CNF -> START_ATTEN_CHAR).
TT_MATCH_SEQUENCE = 0.4
# The sounding window after CM_START_ATTEN_CHAR.IND: TIME_OUT 6 in units of 100 ms.
TT_EVSE_MATCH_MNBC = 0.6
SOUND_TIME_OUT_UNITS = 6  # the TIME_OUT field of CM_SLAC_PARM.CNF / CM_START_ATTEN_CHAR.IND
# Whole matching attempt, from CM_SLAC_PARM.REQ to CM_SLAC_MATCH.REQ.
TT_EVSE_MATCH_SESSION = 10.0
# M-sounds the EV sends (C_EV_match_MNBC); NUM_SOUNDS of CM_SLAC_PARM.CNF.
C_EV_MATCH_MNBC = 10
# Attenuation groups of the HomePlug Green PHY attenuation profile.
ATTEN_GROUPS = 58

# CM_SET_KEY.REQ to the local modem: no confirmation within this -> send again, at most
# SET_KEY_ATTEMPTS times (libslac's EvseSlac defaults: 500 ms, 10 attempts).
SET_KEY_TIMEOUT = 0.5
SET_KEY_ATTEMPTS = 10

# Parallel matching attempts (RunIDs) we track at once on a shared medium; a flood of
# CM_SLAC_PARM.REQ with fresh RunIDs cannot grow memory beyond this.
MAX_PARALLEL_ATTEMPTS = 8

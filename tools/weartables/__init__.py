"""Derive compact battery-wear tables from NREL's BLAST-Lite (development only, not shipped).

    python -m tools.weartables                # rewrite evse/energy/wear_tables/*.py
    python -m tools.weartables --check        # exit 1 when the committed tables differ

See `derive.py` for the method; the charger reads only the generated tables
(`evse.energy.wear`), never BLAST-Lite or numpy.
"""

"""Facts bundled with the charger (no network at run time)."""

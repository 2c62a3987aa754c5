"""XSD -> EXI grammar tables and message classes (development tool, not shipped in the wheel)."""

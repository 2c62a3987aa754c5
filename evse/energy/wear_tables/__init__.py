"""Generated wear tables (tools/weartables), one module per chemistry."""

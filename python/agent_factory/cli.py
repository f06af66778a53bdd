"""The ``agent-factory`` command line (filled in below)."""

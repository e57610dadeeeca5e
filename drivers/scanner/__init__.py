"""Scanner backends (SANE)."""

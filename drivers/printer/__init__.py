"""Printer backends (CUPS)."""

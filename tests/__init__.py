"""Mackuper's test suite."""

"""Alerts and pings: Apprise channels, healthchecks-style pings, the worker watch."""

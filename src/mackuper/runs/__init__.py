"""Runs: enqueueing, the one lifecycle every run goes through, and its kinds."""

"""Integration tests: real servers on loopback ports, no mocks."""

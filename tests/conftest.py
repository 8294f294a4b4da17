"""Shared pytest configuration: the real-server fixtures for all test tiers."""

from tests.servers.fixtures import *  # noqa: F403

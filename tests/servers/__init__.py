"""Real servers (S3, sshd, PostgreSQL) started on free loopback ports for tests.

The pytest fixtures live in :mod:`tests.servers.fixtures`; import them into a
``conftest.py`` with ``from tests.servers.fixtures import *``.
"""

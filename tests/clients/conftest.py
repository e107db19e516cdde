"""pytest's view of tests/clients: the fixtures of client_harness.py (where the helpers the
tests import live, under a name no other test directory's conftest shares)."""

from client_harness import driver_address, driver_address_http, driver_address_tcp  # noqa: F401 (fixtures)

"""Test support for the imaging platform: never imported by runtime code, installed by `make test` only.

- `plugin`: the pytest plugin every test run loads (`-p imaging_testing.plugin`): the session's own
  database and namespace, settings fixtures, the exit watchdog; it installs `reactor_guard`.
- `helpers` (re-exported here): free_port, asgi_client, http_server, event_producer, eventually, service_pool,
  rolled_back, TEST_DATABASE, TEST_NAMESPACE.
- `auth`: issue_test_token. `proxy`: TcpProxy, a connection a test cuts and restores.
- `fhir`: r4b / r4b_resource, answers checked against the R4B models.
- `reactor_guard`: pynetdicom's association reactor made safe for the tests' SCUs.
- `synthetic`: Chinese identities with realistic duplicates (EMPI tests and bench).
- `print_kit`: a modality's films and print SCU, DCMTK's print configuration.
- `replicas`: a service run as several `python -m` processes on free ports (replicas racing each other).
- `logs`: JsonLines, the root logger's records as the JSON lines a service writes.
- `mpps`: a modality's MPPS N-CREATE (IN PROGRESS) and N-SET (COMPLETED, DISCONTINUED) attributes.
"""

from imaging_testing.helpers import (
    TEST_DATABASE,
    TEST_NAMESPACE,
    asgi_client,
    event_producer,
    eventually,
    free_port,
    http_server,
    rolled_back,
    rolled_back_conn,
    scratch_database,
    service_pool,
)

__all__ = ["TEST_DATABASE", "TEST_NAMESPACE", "asgi_client", "event_producer", "eventually", "free_port",
           "http_server", "rolled_back", "rolled_back_conn", "scratch_database", "service_pool"]

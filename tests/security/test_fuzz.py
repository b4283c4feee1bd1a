"""A schemathesis pass over every operation of every service's OpenAPI: never a 5xx, never a hang.

Cases come from the documents the platform serves (valid ones, and ones that break the schema),
sent over real HTTP with a token holding every role, so each request gets past the guard and
into the code. Bounded and reproducible: a fixed number of examples per operation, a fixed seed,
no example database, no shrinking (the failing request is printed as a curl command instead).

The sandbox platform runs on this event loop; the fuzzer is synchronous (requests) and runs in
a worker thread, so the loop stays free to answer it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from imaging_common.auth.roles import ROLES
from schemathesis import GenerationMode

from security.conftest import Sandbox
from security.unavailable import send_sync

# Examples per operation; IMAGING_FUZZ_EXAMPLES and IMAGING_FUZZ_SEED for a deeper or different run by hand.
EXAMPLES = int(os.environ.get("IMAGING_FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("IMAGING_FUZZ_SEED", "20261123"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
REQUEST_TIMEOUT = 30
waited = [0.0]  # seconds spent waiting for answers (the rest is generating cases)


def _fuzz_operation(operation: schemathesis.APIOperation, base_url: str, token: str, session: requests.Session,
                    sent: Counter[str], statuses: Counter[str], failures: list[str]) -> None:
    strategy = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in MODES))

    @seed(SEED)
    @settings(max_examples=EXAMPLES, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        started = time.perf_counter()
        try:
            response = send_sync(lambda: case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT,
                                                   headers={"Authorization": f"Bearer {token}"}))
        except requests.Timeout:
            raise AssertionError(f"no answer within {REQUEST_TIMEOUT} s: {case.as_curl_command()}") from None
        sent[operation.label] += 1
        waited[0] += time.perf_counter() - started
        statuses[f"{response.status_code // 100}xx"] += 1
        assert response.status_code < 500, (
            f"{response.status_code} {response.text[:300]}\n    {case.as_curl_command()}")

    try:
        run()
    except AssertionError as exc:
        failures.append(f"{operation.label}: {exc}")


def _fuzz(sandbox: Sandbox, documents: dict[str, dict]) -> tuple[Counter[str], Counter[str], dict[str, int], list[str]]:
    sent: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    per_service: Counter[str] = Counter()
    failures: list[str] = []
    with requests.Session() as session:
        for service, document in documents.items():
            schema = schemathesis.openapi.from_dict(document)
            for result in schema.get_all_operations():
                operation = result.ok()
                # A fresh session token per operation: one that logs out only spoils its own examples.
                token = sandbox.token(*ROLES, username=f"fuzz-{service}")
                before = sum(sent.values())
                _fuzz_operation(operation, sandbox.url, token, session, sent, statuses, failures)
                per_service[service] += sum(sent.values()) - before
    return sent, statuses, dict(per_service), failures


async def test_fuzzing_every_operation_never_gets_a_server_error(fuzz_sandbox: Sandbox) -> None:
    sandbox = fuzz_sandbox
    documents = {}
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30) as client:
        for name, app in sandbox.apps.items():
            r = await client.get(app.openapi_url)
            assert r.status_code == 200, (name, r.status_code)
            documents[name] = r.json()
    sent, statuses, per_service, failures = await asyncio.to_thread(_fuzz, sandbox, documents)
    print(f"\nfuzz: {sum(sent.values())} requests over {len(sent)} operations (up to {EXAMPLES} examples each, "
          f"positive and negative), answers {dict(sorted(statuses.items()))}, "
          f"{waited[0]:.0f} s of it waiting for answers; per service: {per_service}")
    assert not failures, f"{len(failures)} operation(s) answered 5xx or hung:\n" + "\n".join(failures)
    assert len(sent) >= 180, f"only {len(sent)} operations fuzzed"


async def test_a_closure_of_an_unknown_room_is_a_422(fuzz_sandbox: Sandbox) -> None:
    """Regression (found by this fuzz pass): the room's foreign key refused the insert, a 500."""
    async with httpx.AsyncClient(base_url=fuzz_sandbox.url, timeout=30, headers=fuzz_sandbox.headers("admin")) as c:
        closure = {"room_id": "no-such-room", "kind": "other", "reason": "x",
                   "start": "2030-01-01T08:00:00Z", "end": "2030-01-01T09:00:00Z"}
        r = await c.post("/api/scheduling/closures", json=closure)
        assert r.status_code == 422 and "no-such-room" in r.json()["detail"], r.text

"""Fuzzing harness: every operation of the server's OpenAPI schema, schemathesis cases through hypothesis, as
one account; no 500, no traceback, no file changed by a refused request (``bench/fuzz.py`` and the tests)."""

import os

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

#: Operations that start work in child processes: the tests fuzz them without the role (403), bench/fuzz.py with it.
SPAWNING = {"POST /train/{model}", "POST /scoring/{method}", "POST /scoring/", "POST /train/", "DELETE /train/"}
# Written by the server on its own (QC scoring in the background, caches, SQLite internals), not by a request.
SKIP_FILES = ("uploads", "thumbnails", os.path.join(".cmrassist", "qc"), ".bak", "-wal", "-shm", ".sqlite", ".lock")


def snapshot(folder):
    out = {}
    for d, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(d, name)
            if not any(part in path for part in SKIP_FILES):
                st = os.stat(path)
                out[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def operations(team):
    schema = schemathesis.openapi.from_url(team.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation, team, who, tally, examples):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {team.tokens[who]}"

    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def run(case):
        before = snapshot(team.server.studies)
        response = case.call(base_url=team.url, session=session, timeout=120)
        label = f"{operation.method.upper()} {operation.path} as {who}"
        assert response.status_code < 500, f"{label}: {response.status_code} {response.content[:300]!r}"
        assert b"Traceback" not in response.content, label
        if 400 <= response.status_code < 500:
            tally["refused"] += 1
            assert snapshot(team.server.studies) == before, f"{label}: a refused request changed files"
        tally["tried"] += 1

    run()

"""Fuzzing harness: every operation of the server's OpenAPI schema, schemathesis cases through hypothesis with a
fixed seed (``derandomize``), as one account; no 500, no traceback, no server path in any answer, no file changed
by a refused request (``bench/fuzz.py`` and the tests).

Every failure found is kept in ``tests/api/fuzz_regressions.json`` (``record_failure``) and replayed first on every
run (``replay``), beside the hand-written hostile cases there: nested JSON, non-finite numbers, long tokens, every
``run_sync``, every writing option of every infer task.
"""

import hashlib
import json
import os

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from cmrassist_server.core.checkpoints import PARTIAL_PREFIX

#: Operations that start work in child processes: the tests fuzz them without the role (403), bench/fuzz.py with it.
SPAWNING = {"POST /train/{model}", "POST /scoring/{method}", "POST /scoring/", "POST /train/", "DELETE /train/"}
# Written by the server on its own (QC scoring in the background, caches, SQLite internals), not by a request.
SKIP_FILES = ("uploads", "thumbnails", os.path.join(".cmrassist", "qc"), ".bak", "-wal", "-shm", ".sqlite", ".lock")
REGRESSIONS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "api", "fuzz_regressions.json"
)


def snapshot(folder):
    """Every file's size and, for images, modification time; for the rest (the datastore index, JSON records) a
    digest of its content: the server's scoring child rewrites the index unchanged when it opens the datastore."""
    out = {}
    for d, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(d, name)
            # A partial- file is an atomic write in flight (renamed over its target when done): never state.
            if name.startswith(PARTIAL_PREFIX) or any(part in path for part in SKIP_FILES):
                continue
            try:
                out[os.path.relpath(path, folder)] = _fingerprint(path, name)
            except FileNotFoundError:  # replaced by a background writer between the listing and the read
                continue
    return out


def _fingerprint(path: str, name: str):
    st = os.stat(path)
    if name.endswith((".nii.gz", ".nii", ".nrrd")):
        return (st.st_size, st.st_mtime_ns)
    with open(path, "rb") as f:
        return (st.st_size, hashlib.sha1(f.read()).hexdigest())


def operations(team):
    schema = schemathesis.openapi.from_url(team.url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def check_answer(team, label, response, before, tally):
    """The invariants every answer keeps; counts it."""
    assert response.status_code < 500, f"{label}: {response.status_code} {response.content[:300]!r}"
    assert b"Traceback" not in response.content, label
    studies = os.path.abspath(team.server.studies).encode()
    assert studies not in response.content, f"{label}: the answer shows the studies folder"
    if 400 <= response.status_code < 500:
        tally["refused"] += 1
        after = snapshot(team.server.studies)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        assert not changed, f"{label}: a refused request changed files: {changed[:5]}"
    tally["tried"] += 1


def record_failure(case, who, error):
    """Keep a failing schemathesis case in the regression file (once)."""
    entry = {
        "who": who,
        "method": case.method.upper(),
        "path": case.formatted_path,
        "query": case.query or {},
        "json": case.body if case.media_type == "application/json" else None,
        "found": str(error)[:200],
    }
    cases = load_regressions()
    if not any(
        {k: c.get(k) for k in entry if k != "found"} == {k: entry[k] for k in entry if k != "found"} for c in cases
    ):
        with open(REGRESSIONS, "w") as f:
            json.dump(cases + [entry], f, indent=1)


def load_regressions():
    with open(REGRESSIONS) as f:
        return json.load(f)


def replay(team, tally, who=None):
    """Every kept case, as its account (or ``who``): the invariants hold and, where given, the status is expected."""
    for case in load_regressions():
        account = who or case["who"]
        deep = "[" * case.get("nested", 50000) + "]" * case.get("nested", 50000)  # 100 KB: built, not kept
        raw = deep if "nested" in case else case.get("raw")
        form = {k: deep if v == "nested" else v for k, v in case["form"].items()} if "form" in case else None
        headers = {"content-type": "application/json"} if raw is not None else {}
        before = snapshot(team.server.studies)
        response = team.call(
            account,
            case["method"],
            case["path"],
            params=case.get("query") or None,
            json=case.get("json"),
            data=raw if form is None else form,
            headers=headers,
        )
        label = f"{case['method']} {case['path']} as {account} ({case.get('why', case.get('found', ''))[:60]})"
        check_answer(team, label, response, before, tally)
        if "expect" in case and who is None:
            assert response.status_code in case["expect"], f"{label}: {response.status_code} {response.text[:200]}"


def fuzz(operation, team, who, tally, examples, record=False):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {team.tokens[who]}"

    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def run(case):
        before = snapshot(team.server.studies)
        response = case.call(base_url=team.url, session=session, timeout=120)
        try:
            check_answer(team, f"{operation.method.upper()} {operation.path} as {who}", response, before, tally)
        except AssertionError as e:
            if record:
                record_failure(case, who, e)
            raise

    run()

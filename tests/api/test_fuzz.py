"""Every endpoint of the server's own OpenAPI schema fuzzed with schemathesis (property-based with a fixed seed,
bounded here; ``bench/fuzz.py`` runs longer and records what it finds): no 500, no traceback or server path in a
body, and no file changed by a refused request. The kept regressions (``fuzz_regressions.json``) run first."""

import os

import pytest
from fuzz_harness import SPAWNING, fuzz, operations, replay
from team_server import make_team

EXAMPLES = int(os.environ.get("CMRASSIST_FUZZ_EXAMPLES", "5"))


@pytest.fixture(scope="module")
def fuzz_team(phantom_studies, tmp_path_factory):
    t = make_team(phantom_studies + "_pristine", tmp_path_factory.mktemp("fuzz"), "fuzz")
    yield t
    t.server.stop()


def test_every_kept_regression_is_refused_as_expected(fuzz_team):
    tally = {"tried": 0, "refused": 0}
    replay(fuzz_team, tally)
    assert tally["refused"] >= tally["tried"] - 3  # the three path checks answer 200


def test_every_endpoint_refuses_what_it_cannot_do_and_never_fails(fuzz_team):
    tally = {"tried": 0, "refused": 0}
    for operation in operations(fuzz_team):
        label = f"{operation.method.upper()} {operation.path}"
        fuzz(operation, fuzz_team, "annotator", tally, EXAMPLES)
        if label not in SPAWNING:
            fuzz(operation, fuzz_team, "admin", tally, EXAMPLES)
    print(f"\nfuzz: {tally['tried']} requests, {tally['refused']} refused with a 4xx")  # for the closing note
    assert tally["tried"] > 100 and tally["refused"] > 0

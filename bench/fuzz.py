#!/usr/bin/env python
"""Fuzz every endpoint of the server's OpenAPI schema (schemathesis), longer than the tests do, with every role,
training and scoring included: requests tried, refused with a 4xx, and any 500 or changed file (none expected).

    .venv/bin/python bench/fuzz.py --examples 40
"""

import argparse
import json
import os
import platform
import tempfile
import time

from fuzz_harness import fuzz, operations, replay
from team_server import make_team

from cmrassist_server.io.studies import phantom_studies


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=40, help="hypothesis examples per operation and account")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="fuzz-")
    phantom_studies(os.path.join(work, "source"), 3, seed=11)
    team = make_team(os.path.join(work, "source"), __import__("pathlib").Path(work))
    tally, start, failures = {"tried": 0, "refused": 0}, time.time(), []
    try:
        for who in ("annotator", "reviewer", "admin"):
            try:
                replay(team, tally, who)
            except AssertionError as e:
                failures.append(f"kept regression as {who}: {str(e)[:300]}")
        for operation in operations(team):
            for who in ("annotator", "reviewer", "admin"):
                try:
                    fuzz(operation, team, who, tally, args.examples, record=True)
                except Exception as e:  # report every failing operation, not only the first
                    failures.append(f"{operation.method.upper()} {operation.path} as {who}: {str(e)[:300]}")
    finally:
        team.server.stop()
    print(
        f"{tally['tried']} requests in {time.time() - start:.0f} s; {tally['refused']} refused with a 4xx; "
        f"{len(failures)} failing operations"
    )
    for failure in failures:
        print("  " + failure)
    print("setting: " + json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "examples": args.examples}))


if __name__ == "__main__":
    main()

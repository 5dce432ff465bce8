#!/usr/bin/env python
"""kill -9 in bursts of label and ranking submissions, many rounds: acknowledged writes vs found after each restart.

.venv/bin/python bench/crash_safety.py --rounds 20
"""

import argparse
import json
import os
import platform
import shutil
import tempfile

import numpy as np
from crash_harness import kill_round

from cmrassist_server.io.studies import phantom_studies
from cmrassist_server.launcher import RunningServer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="crash-")
    studies = os.path.join(work, "studies")
    phantom_studies(studies, 3, seed=11)
    rng = np.random.default_rng(args.seed)
    srv = RunningServer(studies, os.path.join(work, "model"), os.path.join(work, "server.log"))
    rows = []
    try:
        for k in range(args.rounds):
            seconds = float(rng.uniform(1.0, 6.0))
            acknowledged, found = kill_round(srv, work, seconds)
            rows.append(
                {"round": k + 1, "kill_after_s": round(seconds, 2), "acknowledged": acknowledged, "found": found}
            )
            print(
                f"round {k + 1:2d}: kill -9 after {seconds:4.1f} s: {acknowledged} acknowledged, {found} found",
                flush=True,
            )
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    total = {k: sum(r[k] for r in rows) for k in ("acknowledged", "found")}
    print(
        f"\n{len(rows)} kills: {total['acknowledged']} acknowledged writes (labels + rankings), {total['found']} found "
        f"after restart; lost {total['acknowledged'] - total['found']}"
    )
    print("setting: " + json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "rounds": args.rounds}))
    return rows


if __name__ == "__main__":
    main()

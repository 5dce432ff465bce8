#!/usr/bin/env python
"""Latency of one annotator round trip (next batch + submit) over HTTP with 100,000 slices in the ranking store.

Starts a real MONAI Label server on 127.0.0.1 over phantom studies, fills its ranking store to ``--items``
slices (the phantoms' own plus synthetic frames that only exist in the store), then times ``POST /ranking/batch``
(ids only, ``thumbnails: false``) followed by ``POST /ranking/submit``, for fresh and well-viewed stores. Also
times thumbnail rendering of a real slice, cold and cached, which the Rank panel fetches beside the batch.

    .venv/bin/python bench/ranking_latency.py --items 100000 --rounds 300
"""

import argparse
import json
import os
import platform
import tempfile
import time
from urllib import request

import numpy as np

from cmrassist_server.io.studies import phantom_studies
from cmrassist_server.launcher import RunningServer
from cmrassist_server.slice_position.ranking_store import RankingStore


def post(url: str, path: str, body: dict) -> dict:
    req = request.Request(
        url + path, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def get(url: str, path: str) -> bytes:
    with request.urlopen(url + path, timeout=60) as resp:
        return resp.read()


def summary(ms) -> dict:
    ms = np.asarray(ms)
    return {
        "median_ms": round(float(np.median(ms)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "n": int(len(ms)),
    }


def round_trips(url: str, rounds: int, rng: np.random.Generator) -> dict:
    batch_ms, submit_ms, total_ms = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        batch = post(url, "/ranking/batch", {"annotator": "bench", "expertise": "expert", "thumbnails": False})
        t1 = time.perf_counter()
        order = [it["id"] for it in batch["items"]]
        rng.shuffle(order)
        post(url, "/ranking/submit", {"batch": batch["batch"], "annotator": "bench", "order": order})
        t2 = time.perf_counter()
        batch_ms.append(1000 * (t1 - t0))
        submit_ms.append(1000 * (t2 - t1))
        total_ms.append(1000 * (t2 - t0))
    return {"next_batch": summary(batch_ms), "submit": summary(submit_ms), "next_batch_plus_submit": summary(total_ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000, help="slices in the store")
    ap.add_argument("--rounds", type=int, default=300, help="timed round trips per store state")
    ap.add_argument("--work", default=None, help="working folder (a temporary one by default)")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="ranking_latency_")
    studies = os.path.join(work, "studies")
    if not os.path.isdir(studies):
        phantom_studies(studies, 4, seed=5)
    srv = RunningServer(studies, os.path.join(work, "model"), os.path.join(work, "server.log"))
    try:
        store = RankingStore(os.path.join(studies, ".cmrassist", "ranking.sqlite"))
        have = store.count()
        synthetic = 0
        while store.count() < args.items:  # synthetic frames of 10 slices: only their ids and ratings matter here
            store.add_items(f"synthetic{synthetic:06d}_ed", 1, min(10, args.items - store.count()))
            synthetic += 1
        rng = np.random.default_rng(0)
        result = {"items": store.count(), "real_items": have, "rounds": args.rounds}
        post(srv.url, "/ranking/batch", {"annotator": "warm-up", "expertise": "expert", "thumbnails": False})
        result["fresh_store"] = round_trips(srv.url, args.rounds, rng)
        # A store where every slice has been seen: selection then goes by volatility and uncertainty.
        with store._transaction() as db:
            db.execute(
                "UPDATE items SET views = 3, volatility = abs(random() % 1000) / 1000.0, "
                "priority = abs(random() % 1000) / 1000.0"
            )
        result["every_item_viewed"] = round_trips(srv.url, args.rounds, rng)
        real = store.items(list(range(1, have + 1)))[:20]
        cold, warm = [], []
        for it in real:
            for bucket in (cold, warm):
                t0 = time.perf_counter()
                get(srv.url, f"/ranking/thumbnail?item={it.id}")
                bucket.append(1000 * (time.perf_counter() - t0))
        result["thumbnail"] = {"cold": summary(cold), "cached": summary(warm)}
    finally:
        srv.stop()
    result["setting"] = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "server": "MONAI Label on 127.0.0.1, one uvicorn worker, SQLite WAL",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

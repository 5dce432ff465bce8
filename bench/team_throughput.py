#!/usr/bin/env python
"""Eight annotators submitting labels and rankings at once over HTTP: throughput, median and p95 latency; and what
the token check adds to a request (the same call on an open server and with a token).

    .venv/bin/python bench/team_throughput.py --seconds 30
"""

import argparse
import json
import os
import platform
import tempfile
import threading
import time

import numpy as np
import requests
import SimpleITK as sitk
from team_server import make_team

from cmrassist_server.accounts.store import AccountStore
from cmrassist_server.io.studies import phantom_studies
from cmrassist_server.launcher import RunningServer


def annotate(url, token, image_id, path, until, latencies):
    headers = {"Authorization": f"Bearer {token}"}
    while time.time() < until:
        with open(path, "rb") as f:
            t = time.perf_counter()
            requests.put(
                url + "/datastore/label",
                params={"image": image_id},
                headers=headers,
                files={"label": ("l.nii.gz", f)},
                timeout=60,
            ).raise_for_status()
        latencies["label"].append(time.perf_counter() - t)
        t = time.perf_counter()
        batch = requests.post(url + "/ranking/batch", json={"thumbnails": False}, headers=headers, timeout=60).json()
        requests.post(
            url + "/ranking/submit",
            json={"batch": batch["batch"], "order": [i["id"] for i in batch["items"]]},
            headers=headers,
            timeout=60,
        ).raise_for_status()
        latencies["ranking"].append(time.perf_counter() - t)


def median_ms(url, headers, n=200):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        requests.get(url + "/auth/me", headers=headers, timeout=30).raise_for_status()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="team-")
    phantom_studies(os.path.join(work, "source"), 3, seed=11)
    team = make_team(os.path.join(work, "source"), __import__("pathlib").Path(work))
    store = AccountStore(os.path.join(team.server.studies, ".cmrassist", "users.sqlite"))
    tokens = [store.add(f"Load {k}", "annotator", "expert") for k in range(8)]
    image_id = "phantom011_ed"
    image = sitk.ReadImage(os.path.join(team.server.studies, image_id + ".nii.gz"))
    label = sitk.GetImageFromArray(np.zeros(image.GetSize()[::-1], np.uint8))
    label.CopyInformation(image)
    path = os.path.join(work, "label.nii.gz")
    sitk.WriteImage(label, path)
    latencies = {"label": [], "ranking": []}
    until = time.time() + args.seconds
    threads = [threading.Thread(target=annotate, args=(team.url, t, image_id, path, until, latencies)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    signed = median_ms(team.url, {"Authorization": f"Bearer {tokens[0]}"})
    team.server.stop()
    open_srv = RunningServer(os.path.join(work, "source"), os.path.join(work, "m2"), os.path.join(work, "open.log"))
    unsigned = median_ms(open_srv.url, {})
    open_srv.stop()
    for kind, values in latencies.items():
        print(
            f"{kind:8s}: {len(values) / args.seconds:6.1f}/s   median {1000 * np.median(values):6.1f} ms   "
            f"p95 {1000 * np.percentile(values, 95):6.1f} ms   ({len(values)} in {args.seconds:g} s, 8 annotators)"
        )
    print(f"GET /auth/me median: {unsigned:.2f} ms open, {signed:.2f} ms with a token (+{signed - unsigned:.2f} ms)")
    print("setting: " + json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "seconds": args.seconds}))


if __name__ == "__main__":
    main()

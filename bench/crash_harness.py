"""Crash-safety harness: annotators submitting labels and rankings in a burst, the server killed with -9, then
restarted and checked: every acknowledged write must be there (``bench/crash_safety.py``, and the tests)."""

import hashlib
import os
import signal
import sqlite3
import threading
import time

import numpy as np
import requests
import SimpleITK as sitk

IMAGES = ["phantom011_ed", "phantom011_es", "phantom012_ed"]


class Burst:
    """Annotators submitting labels and rankings until the server stops answering; what was acknowledged."""

    def __init__(self, srv, folder, annotators=4):
        self.srv, self.folder, self.stop = srv, folder, threading.Event()
        self.acked, self.inflight, self.rankings = {}, {}, []
        self.threads = [threading.Thread(target=self.annotate, args=(f"Annotator {k}", k)) for k in range(annotators)]
        self.threads.append(threading.Thread(target=self.rank))

    def label(self, image_id, seed):
        image = sitk.ReadImage(os.path.join(self.srv.studies, image_id + ".nii.gz"))
        values = np.random.default_rng(seed).integers(0, 4, image.GetSize()[::-1]).astype(np.uint8)
        label = sitk.GetImageFromArray(values)
        label.CopyInformation(image)
        path = os.path.join(self.folder, f"{image_id}_{seed}.nii.gz")
        sitk.WriteImage(label, path)
        return path, hashlib.sha256(values.tobytes()).hexdigest()

    def annotate(self, name, k):
        n = 0
        while not self.stop.is_set():
            image_id = IMAGES[n % len(IMAGES)]
            path, digest = self.label(image_id, 1000 * k + n)
            self.inflight[(image_id, name)] = digest
            try:
                with open(path, "rb") as f:
                    answer = requests.put(
                        self.srv.url + "/datastore/label",
                        params={"image": image_id, "tag": "final"},
                        data={"params": f'{{"annotator": "{name}", "expertise": "expert"}}'},
                        files={"label": ("l.nii.gz", f)},
                        timeout=30,
                    )
            except requests.RequestException:
                return
            if answer.status_code == 200:
                self.acked[(image_id, name)] = digest
            n += 1

    def rank(self):
        while not self.stop.is_set():
            try:
                batch = requests.post(
                    self.srv.url + "/ranking/batch", json={"annotator": "Ranker", "thumbnails": False}, timeout=30
                ).json()
                order = [it["id"] for it in batch["items"]]
                answer = requests.post(
                    self.srv.url + "/ranking/submit",
                    json={"batch": batch["batch"], "annotator": "Ranker", "order": order},
                    timeout=30,
                )
            except (requests.RequestException, KeyError, ValueError):
                return
            if answer.status_code == 200:
                self.rankings.append(batch["batch"])


def version_digest(srv, image_id, name):
    listed = requests.get(f"{srv.url}/versions/{image_id}", timeout=30).json()["versions"]
    mine = [v for v in listed if v["annotator"] == name]
    if not mine:
        return None
    raw = requests.get(f"{srv.url}/versions/{image_id}/{mine[0]['id']}", timeout=30).content
    path = os.path.join(srv.studies, "..", "check.nii.gz")
    with open(path, "wb") as f:
        f.write(raw)
    return hashlib.sha256(sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(np.uint8).tobytes()).hexdigest()


def kill_round(srv, folder, seconds):
    """One burst, a kill -9 after ``seconds``, a restart; returns (acknowledged, found) counts."""
    burst = Burst(srv, folder)
    for t in burst.threads:
        t.start()
    time.sleep(seconds)
    os.killpg(srv.proc.pid, signal.SIGKILL)
    burst.stop.set()
    for t in burst.threads:
        t.join(60)
    srv.restart()
    found = 0
    for (image_id, name), digest in burst.acked.items():
        assert version_digest(srv, image_id, name) in (digest, burst.inflight[(image_id, name)]), (image_id, name)
        found += 1
    db = sqlite3.connect(os.path.join(srv.studies, ".cmrassist", "ranking.sqlite"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    answered = {r[0] for r in db.execute("SELECT id FROM batches WHERE status='answered'")}
    assert set(burst.rankings) <= answered
    return len(burst.acked) + len(burst.rankings), found + len(set(burst.rankings) & answered)

"""Eight annotators at once, as threads and as processes, on the same images: no label or ranking lost, no one
handed a slice that sits in another's open batch; and a long inference does not hold up other requests."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import SimpleITK as sitk

IMAGES = ["phantom011_ed", "phantom012_ed"]
WORKER = r"""
import json, sys, time, requests
url, token, images, label_paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
headers = {"Authorization": "Bearer " + token}
out = {"labels": [], "batches": []}
for image_id in images:
    with open(label_paths[image_id], "rb") as f:
        r = requests.put(url + "/datastore/label", params={"image": image_id, "tag": "final"}, headers=headers,
                         files={"label": ("l.nii.gz", f)}, timeout=120)
    if r.status_code == 200:
        out["labels"].append([image_id, r.json()["version"]])
for _ in range(3):
    got = time.time()
    batch = requests.post(url + "/ranking/batch", json={"thumbnails": False}, headers=headers, timeout=120).json()
    ids = [it["id"] for it in batch["items"]]
    done = requests.post(url + "/ranking/submit", json={"batch": batch["batch"], "order": ids}, headers=headers, timeout=120)
    out["batches"].append({"id": batch["batch"], "items": ids, "got": got, "done": time.time(), "ok": done.ok})
print(json.dumps(out))
"""


def labels_for(team, folder):
    paths = {}
    for image_id in IMAGES:
        image = sitk.ReadImage(os.path.join(team.server.studies, image_id + ".nii.gz"))
        label = sitk.GetImageFromArray(
            np.random.default_rng(len(paths)).integers(0, 4, image.GetSize()[::-1]).astype(np.uint8)
        )
        label.CopyInformation(image)
        paths[image_id] = str(folder / f"{image_id}.nii.gz")
        sitk.WriteImage(label, paths[image_id])
    return paths


def test_eight_annotators_at_once_lose_nothing(team, tmp_path):
    from cmrassist_server.accounts.store import AccountStore

    store = AccountStore(os.path.join(team.server.studies, ".cmrassist", "users.sqlite"))
    tokens = [store.add(f"Concurrent {k}", "annotator", "expert") for k in range(8)]
    paths = labels_for(team, tmp_path)
    args = lambda token: [sys.executable, "-c", WORKER, team.url, token, json.dumps(IMAGES), json.dumps(paths)]  # noqa: E731
    results, threads = [], []
    processes = [subprocess.Popen(args(t), stdout=subprocess.PIPE, text=True) for t in tokens[:4]]
    for token in tokens[4:]:
        threads.append(
            threading.Thread(
                target=lambda t=token: results.append(
                    json.loads(subprocess.run(args(t), capture_output=True, text=True, check=True).stdout)
                )
            )
        )
    for t in threads:
        t.start()
    results += [json.loads(p.communicate()[0]) for p in processes]
    for t in threads:
        t.join()
    assert len(results) == 8
    for image_id in IMAGES:
        names = {v["annotator"] for v in team.call("reviewer", "GET", f"/versions/{image_id}").json()["versions"]}
        assert {f"Concurrent {k}" for k in range(8)} <= names
    assert all(len(r["labels"]) == len(IMAGES) for r in results)
    batches = [b for r in results for b in r["batches"]]
    assert all(b["ok"] for b in batches) and len(batches) == 24
    for i, a in enumerate(batches):
        for b in batches[i + 1 :]:
            if a["got"] < b["done"] and b["got"] < a["done"]:  # both open at the same time
                assert not set(a["items"]) & set(b["items"])


def test_a_long_inference_does_not_hold_up_other_requests(team, tmp_path):
    cine = sitk.ReadImage(os.path.join(team.server.studies, "phantom040_cine.nii.gz"))
    frames = sitk.JoinSeries(
        [sitk.Extract(cine, list(cine.GetSize()[:3]) + [0], [0, 0, 0, k % cine.GetSize()[3]]) for k in range(30)]
    )
    frames.SetSpacing(cine.GetSpacing())
    sitk.WriteImage(frames, str(tmp_path / "long.nii.gz"))
    model = team.call("admin", "GET", "/info/").json()["models"]["segmentation"]
    if not model["trained"]:  # a model of its own: an untrained network serves to measure waiting
        from cmrassist_server.core.checkpoints import ModelRecord
        from cmrassist_server.imaging.preprocess import PreprocessConfig
        from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation

        publish_segmentation(
            os.path.join(team.server.model_dir, "segmentation.pt"),
            NetworkSpec().build(),
            NetworkSpec(),
            PreprocessConfig(),
            ModelRecord(kind="segmentation", metric="mean"),
        )
    done = []

    def segment():
        with open(tmp_path / "long.nii.gz", "rb") as f:
            done.append(team.call("annotator", "POST", "/infer/segmentation", files={"file": ("c.nii.gz", f)}))

    worker = threading.Thread(target=segment)
    worker.start()
    time.sleep(1.0)
    answered = []
    while worker.is_alive() and len(answered) < 3:
        answered.append(team.call("annotator", "GET", "/info/").status_code)
    still_running = worker.is_alive()
    worker.join()
    assert done[0].status_code == 200 and answered and set(answered) == {200}
    assert still_running  # /info/ was answered while the 30-frame cine was being segmented

"""Nothing acknowledged is lost when the server is killed with -9 in a burst of submissions, and a training run
dies with its server and leaves the served model loadable (issue 14). ``bench/crash_safety.py`` runs 20+ rounds."""

import json
import os
import signal
import time

import numpy as np
import psutil
import pytest
import requests
from crash_harness import kill_round

from cmrassist_server.core import checkpoints


def test_acknowledged_labels_and_rankings_survive_kill_9(fresh_server, tmp_path):
    total = 0
    for seconds in (2.5, 4.0):
        acknowledged, found = kill_round(fresh_server, str(tmp_path), seconds)
        assert found == acknowledged
        total += acknowledged
    assert total > 10  # the bursts did write
    index = os.path.join(fresh_server.studies, "datastore_v2.json")
    assert requests.get(fresh_server.url + "/datastore/", params={"output": "all"}, timeout=30).ok and os.path.isfile(
        index
    )


@pytest.mark.slow
def test_a_training_run_dies_with_its_server_and_leaves_the_served_model_loadable(fresh_server):
    requests.post(fresh_server.url + "/train/segmentation", json={"max_epochs": 40, "max_minutes": 10}, timeout=30)
    deadline = time.time() + 240
    while time.time() < deadline and not os.path.isfile(os.path.join(fresh_server.model_dir, "segmentation.pt")):
        time.sleep(1)
    server = psutil.Process(fresh_server.proc.pid)
    training = [p for p in server.children(recursive=True) if "-m train" in " ".join(p.cmdline())]
    assert training, "no training process found"
    time.sleep(np.random.default_rng().uniform(0, 5))  # somewhere inside an epoch, or inside a publication
    os.kill(fresh_server.proc.pid, signal.SIGKILL)  # the server only: its training child must follow by itself
    gone, alive = psutil.wait_procs(training, timeout=30)
    assert not alive, "the training process outlived its server"
    fresh_server.restart()
    info = requests.get(fresh_server.url + "/info/", timeout=30).json()
    assert info["models"]["segmentation"]["trained"] is True
    assert requests.get(fresh_server.url + "/train/", timeout=30).json().get("status") != "RUNNING"
    checkpoint = os.path.join(fresh_server.model_dir, "segmentation.pt")
    record = checkpoints.read_record(checkpoint)
    assert record["checkpoint_sha256"] == checkpoints.file_sha256(checkpoint)
    inside = json.loads(json.dumps(checkpoints.load(checkpoint).record))  # tuples as JSON holds them
    assert {k: v for k, v in record.items() if k != "checkpoint_sha256"} == inside
    assert info["models"]["segmentation"]["model_record"]["epochs"] == record["epochs"]

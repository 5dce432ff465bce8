"""Fixtures of the cohort tests: a real local Ray cluster (``ray start --head``, two worker CPUs, on free ports,
in its own temp dir and process group, stopped after), small models made here, and phantom cine studies.

The cluster is session-scoped and the tests are marked ``slow``: a bare ``pytest`` never starts Ray.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import torch
from cohort_helpers import analyse

from cmrassist_server.launcher import free_port

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_group(pgid: int, grace_s: float = 15.0) -> None:
    """Stop every process of the cluster's process group (``ray stop`` would stop every Ray on the machine)."""
    with_signal = [(signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)]
    for sig, wait in with_signal:
        if not _group_alive(pgid):
            return
        os.killpg(pgid, sig)
        deadline = time.time() + wait
        while time.time() < deadline and _group_alive(pgid):
            time.sleep(0.2)


@pytest.fixture(scope="session")
def ray_cluster():
    """Address of a Ray head started for these tests: 2 CPUs (two model workers), a 100 MB object store.

    Token authentication as Ray has it by default, with a token of its own: set in this process's environment
    for the session, so that every driver started from here (the command, a server's child) joins it.
    """
    temp = tempfile.mkdtemp(prefix="cr", dir="/tmp")  # short: Ray's socket paths must stay under 107 characters
    log_path = os.path.join(temp, "start.log")
    ports = {
        k: str(free_port())
        for k in (
            "port",
            "ray-client-server-port",
            "dashboard-port",
            "metrics-export-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
        )
    }
    cmd = [
        RAY,
        "start",
        "--head",
        "--num-cpus",
        "2",
        "--num-gpus",
        "0",
        "--temp-dir",
        temp,
        "--include-dashboard=false",
        "--object-store-memory",
        str(100 * 1024 * 1024),
        "--disable-usage-stats",
        *[a for k, v in ports.items() for a in (f"--{k}", v)],
    ]
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in token}
    os.environ.update(token)
    env = dict(os.environ)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        code = proc.wait(timeout=300)
    text = open(log_path).read()
    found = re.search(r"--address='([^']+)'", text)
    try:
        if code != 0 or not found:
            pytest.fail(f"ray start failed ({code}):\n{text[-3000:]}")
        yield found.group(1)
    finally:
        _stop_group(proc.pid)
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def cohort_models(tmp_path_factory):
    """A small untrained segmentation network and QC network, published as a served model folder: the tests
    compare the pipeline with the project's own code on the same labels, which holds for any model."""
    from cmrassist_server.core.checkpoints import ModelRecord
    from cmrassist_server.imaging.preprocess import PreprocessConfig
    from cmrassist_server.qc.network import QCSpec, publish_qc
    from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation

    folder = tmp_path_factory.mktemp("cohort_models")
    torch.manual_seed(16)
    spec = NetworkSpec(channels=(8, 16, 32, 64))
    record = ModelRecord(kind="segmentation", metric="mean", details={"made_by": "tests/cohort"})
    publish_segmentation(str(folder / "segmentation.pt"), spec.build(), spec, PreprocessConfig(), record)
    qc_spec = QCSpec(channels=(8, 16, 32))
    publish_qc(str(folder / "qc.pt"), qc_spec.build().eval(), PreprocessConfig(), ModelRecord(kind="qc", metric="mae"))
    return str(folder)


@pytest.fixture(scope="session")
def cohort_studies(tmp_path_factory):
    """6 phantom subjects with their 6-frame cines (ED/ES studies beside them), and one corrupt cine: what a failed
    download leaves (an error page under the study's name). An untouched copy is kept for runs that must start
    from the same folder."""
    from cmrassist_server.io.studies import phantom_studies

    folder = str(tmp_path_factory.mktemp("cohort") / "studies")
    phantom_studies(folder, 6, seed=160, labelled_fraction=0.0, with_cine=True, n_frames=6)
    with open(os.path.join(folder, "broken_cine.nii.gz"), "w") as f:
        f.write("<html><body><h1>504 Gateway Time-out</h1></body></html>\n")
    shutil.copytree(folder, folder + "_pristine")
    return folder


@pytest.fixture(scope="session")
def first_run(cohort_studies, cohort_models, ray_cluster, tmp_path_factory):
    """The uninterrupted cluster run every other run is compared with: its output folder and JSON lines."""
    out = str(tmp_path_factory.mktemp("cohort_runs") / "first")
    lines = analyse(cohort_studies, out, cohort_models, "--address", ray_cluster)
    return out, lines

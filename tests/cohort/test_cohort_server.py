"""The server's side of a cohort run, on a real MONAI Label server over the studies the cluster run analysed:
its ``qc`` strategy serves the review queue, its ``qc`` infer task gives the QC values the run wrote (on the
run's labels, which are batch work's segmentation: the served model with flips), and ``POST /batch/analyse``
(admin) runs the same command in a child process with progress in its status; without ``--address`` (Ray
started locally) it writes the same table as the cluster run."""

import csv
import json
import os
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import SimpleITK as sitk

from cmrassist_server.imaging.imageio import read_image
from cmrassist_server.launcher import RunningServer
from cmrassist_server.segmentation.batch import batch_predictor, batch_segmentation
from CMRAssistLib.client import CMRAssistClient, ServerError

pytestmark = pytest.mark.slow

#: Report fields that depend on when and how a check was asked for, not on the image and label.
VOLATILE = {"image", "label", "image_info", "seconds", "stamp", "frame", "function"}


@pytest.fixture(scope="module")
def cohort_server(first_run, cohort_studies, cohort_models, tmp_path_factory):
    """A server on the studies the cluster run wrote its review queue into, with the run's models."""
    srv = RunningServer(cohort_studies, cohort_models, str(tmp_path_factory.mktemp("cohort_server") / "server.log"))
    yield srv
    srv.stop()


def queue(out):
    with open(os.path.join(out, "review_queue.csv")) as f:
        return list(csv.DictReader(f))


def test_review_queue_is_served_by_the_qc_strategy_and_qc_matches_the_infer_task(first_run, cohort_server):
    out, _ = first_run
    client = CMRAssistClient(cohort_server.url)
    first = queue(out)[0]
    assert client.next_sample("qc")["id"] == first["review_image"]
    record = json.load(open(os.path.join(out, "subjects", first["subject"] + ".json")))
    frames = {f["frame"]: f for f in record["frames"]}
    for phase in ("es", "ed"):  # ES first: the ED report then finds it and adds the subject's function
        image_id, frame = f"{first['subject']}_{phase}", record[f"{phase}_frame"]
        ours = sitk.GetArrayFromImage(sitk.ReadImage(os.path.join(out, frames[frame]["label"])))
        # The run's label is batch work's segmentation of that frame (the served model with flips: no ensemble).
        batch = batch_predictor(batch_segmentation(cohort_server.model_dir), device="cpu")
        assert np.array_equal(
            ours, batch.segment(read_image(os.path.join(cohort_server.studies, image_id + ".nii.gz")))
        )
        client.submit_label(
            image_id,
            os.path.join(out, frames[frame]["label"]),
            annotator="cmrassist analyse",
            expertise="expert",
            tag="cohort",
        )
        report = client.quality(image_id, label="cohort")
        expected = record["qc"][phase]
        assert {k: v for k, v in report.items() if k not in VOLATILE} == {
            k: v for k, v in expected.items() if k not in VOLATILE
        }
    row = pq.read_table(os.path.join(out, "subjects.parquet")).to_pylist()
    row = next(r for r in row if r["subject"] == first["subject"])
    function = report["function"]["corrected"]
    for key in ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "rv_edv_ml", "rv_ef_pct", "lv_mass_g"):
        assert row[f"{key}_corrected"] == function[key], key


def _wait(client, predicate, timeout=600):
    deadline, seen = time.time() + timeout, []
    while time.time() < deadline:
        status = client.cohort_status()
        seen.append(status)
        if predicate(status):
            return status, seen
        time.sleep(0.5)
    raise AssertionError(f"cohort run status never matched: last {seen[-1] if seen else None}")


def test_batch_analyse_runs_the_cohort_in_a_child_process_in_local_mode(first_run, cohort_server, cohort_studies):
    client = CMRAssistClient(cohort_server.url, long_timeout=120)
    with pytest.raises(ServerError) as bad:
        client.cohort_start(frames="every")
    assert bad.value.status == 422
    started = client.cohort_start()  # no address: the child starts Ray on this machine
    assert started["state"] == "running"
    with pytest.raises(ServerError) as busy:
        client.cohort_start()
    assert busy.value.status == 409
    status, seen = _wait(client, lambda s: s["state"] != "running")
    assert status["state"] == "done", status
    assert (
        any(s["progress"].get("event") == "progress" for s in seen if s["state"] == "running")
        or status["progress"]["done"] == 6
    )
    assert status["run"]["counts"]["rows_done"] == 6 and status["run"]["counts"]["rows_failed"] == 1
    out = os.path.join(cohort_studies, ".cmrassist", "cohort")
    assert (
        pq.read_table(os.path.join(out, "subjects.parquet")).to_pylist()
        == pq.read_table(os.path.join(first_run[0], "subjects.parquet")).to_pylist()
    )
    assert json.load(open(os.path.join(out, "run.json")))["cluster"]["address"] == "local"

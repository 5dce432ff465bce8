"""``cmrassist analyse`` on a real local Ray cluster (two worker processes): the table matches
``CMRAssistCore.measures`` on the labels it wrote, a corrupt study is listed while the others are done, a second
run does nothing, and a run killed mid-way then resumed writes the same table as an uninterrupted one. (Local
mode, without ``--address``, is run by ``POST /batch/analyse`` in test_cohort_server.py.)"""

import glob
import hashlib
import json
import os
import signal
import subprocess
import time

import pytest
from cohort_helpers import analyse, analyse_command, label_array, table

from CMRAssistCore.measures import class_volumes_ml, ventricular_function

pytestmark = pytest.mark.slow


def test_cluster_run_measures_every_frame_and_lists_the_corrupt_study(
    first_run, cohort_studies, cohort_models, ray_cluster
):
    out, lines = first_run
    infos = {
        k: v["image"]["info"]
        for k, v in json.load(open(os.path.join(cohort_studies, "datastore_v2.json")))["objects"].items()
    }
    assert [line["event"] for line in lines][:2] == ["start", "workers"] and lines[-1]["event"] == "done"
    assert lines[1]["workers"] == 2 and (lines[-1]["done"], lines[-1]["failed"]) == (6, 1)
    rows = {row["subject"]: row for row in table(out)}
    assert sorted(rows) == ["broken_cine"] + [f"phantom{160 + i}" for i in range(6)]
    assert rows["broken_cine"]["status"] == "failed" and "broken_cine" in rows["broken_cine"]["reason"]
    for subject, row in rows.items():
        if subject == "broken_cine":
            continue
        record = json.load(open(os.path.join(out, "subjects", subject + ".json")))
        assert [f["frame"] for f in record["frames"]] == list(range(1, 7))  # every frame of the cine
        labels = {f["frame"]: label_array(out, f["label"]) for f in record["frames"]}
        info = infos[subject + "_cine"]
        assert (row["ed_frame"], row["es_frame"], row["ed_es_source"]) == (
            info["ed_frame"],
            info["es_frame"],
            "image info",
        )
        (ed, spacing), (es, _) = labels[row["ed_frame"]], labels[row["es_frame"]]
        expected = ventricular_function(ed, es, spacing)
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        assert row["lv_mass_es_g"] == pytest.approx(class_volumes_ml(es, spacing)["lv_myocardium"] * 1.05)
        curve = [class_volumes_ml(labels[t][0], spacing)["lv_cavity"] for t in range(1, 7)]
        assert record["curve"]["lv_ml"] == pytest.approx(curve)
        # QC-corrected values come from the ED and ES frames' QC reports, beside the raw ones.
        corrected = record["qc"]["ed"]["volumes"]["corrected"]["lv_cavity_ml"]
        assert row["lv_edv_ml_corrected"] == corrected and row["qc_learned"] is True
        assert {c["check"] for c in record["checks"]} == {
            "volume_curve",
            "ed_es_timing",
            "stroke_volumes",
            "mass_ed_es",
        }
    csv_lines = open(os.path.join(out, "subjects.csv")).read().splitlines()
    assert len(csv_lines) == 8 and csv_lines[0].startswith("subject,status,reason")
    run = json.load(open(os.path.join(out, "run.json")))
    sha = hashlib.sha256(open(os.path.join(cohort_models, "segmentation.pt"), "rb").read()).hexdigest()
    assert run["models"]["segmentation"]["sha256"] == sha and run["models"]["qc"]["record"]["kind"] == "qc"
    assert run["cluster"]["address"] == ray_cluster and len(run["cluster"]["workers"]) == 2
    assert run["code"]["commit"] and run["settings"]["analysis"]["frames"] == "all"
    assert all(run["timings"]["stage_s"][k] > 0 for k in ("read", "preprocess", "network", "postprocess", "qc"))
    assert run["failed"] == [{"subject": "broken_cine", "reason": rows["broken_cine"]["reason"]}]
    queue = open(os.path.join(out, "review_queue.csv")).read().splitlines()
    assert len(queue) == 7 and queue[1].split(",")[1] == run["review_first"]


def test_second_run_does_nothing(first_run, cohort_studies, cohort_models, ray_cluster):
    out, _ = first_run
    labels = sorted(glob.glob(os.path.join(out, "labels", "*", "*.nii.gz")))
    before = {p: os.stat(p).st_mtime_ns for p in labels}
    rows = table(out)
    lines = analyse(cohort_studies, out, cohort_models, "--address", ray_cluster)
    done = lines[-1]
    assert (done["done"], done["failed"], done["skipped"]) == (0, 0, 7) and "workers" not in [x["event"] for x in lines]
    assert {p: os.stat(p).st_mtime_ns for p in labels} == before and table(out) == rows


def _wait_for_subjects(out, n, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = glob.glob(os.path.join(out, "subjects", "*.json"))
        if len(done) >= n:
            return len(done)
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} subjects done within {timeout} s")


def test_killed_run_resumes_to_the_same_table(first_run, cohort_studies, cohort_models, ray_cluster, tmp_path):
    out = str(tmp_path / "killed")
    with open(str(tmp_path / "killed.log"), "w") as log:
        proc = subprocess.Popen(
            analyse_command(cohort_studies, out, cohort_models, "--address", ray_cluster),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ,
            start_new_session=True,
        )
        try:
            _wait_for_subjects(out, 2, proc)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not os.path.exists(os.path.join(out, "subjects.parquet"))  # killed before the end
    assert len(glob.glob(os.path.join(out, "subjects", "*.json"))) < 6
    lines = analyse(cohort_studies, out, cohort_models, "--address", ray_cluster)
    assert lines[-1]["skipped"] >= 2 and lines[-1]["done"] + lines[-1]["failed"] + lines[-1]["skipped"] == 7
    assert not glob.glob(os.path.join(out, "**", "partial-*"), recursive=True)
    assert table(out) == table(first_run[0])
    assert open(os.path.join(out, "subjects.csv")).read() == open(os.path.join(first_run[0], "subjects.csv")).read()

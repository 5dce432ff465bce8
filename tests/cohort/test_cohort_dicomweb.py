"""``cmrassist analyse --studies <DICOMweb root>``: a real Orthanc holding two short-axis cine studies (as scanners
export them: one series per slice, and one enhanced MR instance) is mirrored through the DICOMweb datastore and
analysed on the Ray cluster; the measures match ``CMRAssistCore.measures`` on the labels, the frame interval comes
from the DICOM trigger times, and a second run fetches and does nothing."""

import json
import os

import numpy as np
import pytest
from cohort_helpers import analyse, label_array, table

from cmrassist_server.io.dicom.orthanc import RunningOrthanc, orthanc_available
from cmrassist_server.io.dicom.writer import study_header, write_cine
from cmrassist_server.io.phantoms import make_phantom
from CMRAssistCore.measures import ventricular_function

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    assert orthanc_available(), "Orthanc is not installed: run `make test` (scripts/setup_system.sh installs it)"
    root = tmp_path_factory.mktemp("cohort_pacs")
    orthanc = RunningOrthanc(str(root / "orthanc"))
    for seed, layout in ((21, "series_per_slice"), (22, "enhanced")):
        rng = np.random.default_rng(seed)
        header = study_header(rng, patient_id=f"COH{seed}", height_cm=170, weight_kg=70)
        orthanc.upload(
            write_cine(
                make_phantom(seed, n_frames=6).cine,
                str(root / f"dicom{seed}"),
                layout=layout,
                header=header,
                rng=rng,
                rr_ms=900.0,
            )
        )
    yield orthanc
    orthanc.stop()


def test_a_pacs_is_mirrored_and_analysed(pacs, cohort_models, ray_cluster, tmp_path):
    out = str(tmp_path / "pacs_run")
    lines = analyse(pacs.dicomweb, out, cohort_models, "--address", ray_cluster, "--frames", "ed-es")
    assert (lines[-1]["done"], lines[-1]["failed"]) == (2, 0)
    rows = table(out)
    assert [r["subject"] for r in rows] == ["COH21", "COH22"]
    for row in rows:
        record = json.load(open(os.path.join(out, "subjects", row["subject"] + ".json")))
        # Mirrored without a model, the cines have no ES in their info: "ed-es" takes the whole cine.
        assert row["frames_analysed"] == 6 and row["ed_es_source"] == "volume curve"
        frames = {f["frame"]: label_array(out, f["label"]) for f in record["frames"]}
        (ed, spacing), (es, _) = frames[row["ed_frame"]], frames[row["es_frame"]]
        assert row["lv_edv_ml"] == pytest.approx(ventricular_function(ed, es, spacing)["lv_edv_ml"])
        interval = record["curve"]["frame_interval_s"]
        assert interval == pytest.approx(0.9 / 6, rel=0.05)  # 6 phases over a 900 ms RR interval
        assert row["lv_per_ml_s"] == pytest.approx(row["lv_per_ml_per_frame"] / interval)
    again = analyse(pacs.dicomweb, out, cohort_models, "--address", ray_cluster, "--frames", "ed-es")
    assert (again[-1]["done"], again[-1]["skipped"]) == (0, 2) and table(out) == rows

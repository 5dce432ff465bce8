"""The study report: its values are ``CMRAssistCore.measures`` on the same labels (indexed by Mosteller's BSA when
height and weight are known), with QC, normal ranges and the volume curve; JSON, CSV, PDF, PNG and HTML render;
``GET /report/{image}`` answers with roles and clear errors."""

import csv
import io
import json
import math

import numpy as np
import pytest
import requests
import SimpleITK as sitk

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.dicom.importer import import_dicom
from cmrassist_server.io.dicom.writer import study_header, write_cine
from cmrassist_server.io.phantoms import make_phantom, render_frame
from cmrassist_server.io.studies import StudiesWriter, label_info
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.reporting.render import render
from cmrassist_server.reporting.report import build_report
from cmrassist_server.reporting.study import study_data
from CMRAssistCore.measures import ventricular_function


@pytest.fixture(scope="module")
def cine_study(tmp_path_factory):
    """A DICOM-imported cine (patient 180 cm, 80 kg) with a 4D final label on every frame."""
    root = tmp_path_factory.mktemp("report")
    p = make_phantom(7, n_frames=8)
    rng = np.random.default_rng(7)
    header = study_header(rng, patient_id="REP7", height_cm=180, weight_kg=80)
    write_cine(p.cine, str(root / "dicom"), layout="single_series", header=header, rng=rng)
    studies = str(root / "studies")
    cine_id = import_dicom(str(root / "dicom"), studies)["images"][0]
    labels = np.stack([render_frame(p.anatomy, t, np.random.default_rng(t))[1] for t in range(8)]).astype(np.uint8)
    label = sitk.JoinSeries([sitk.GetImageFromArray(f) for f in labels])
    label.CopyInformation(p.cine)
    StudiesWriter(studies).add_label(cine_id, label, label_info("Dr R", "expert"))
    return StudiesWriter(studies).datastore, cine_id, labels, p


def test_cine_report_values_are_the_measures_of_its_ed_and_es_frames(cine_study):
    datastore, cine_id, labels, p = cine_study
    data = study_data(datastore, cine_id)
    report = build_report(data, QualityChecker(None))
    lv = [float((f == 3).sum()) for f in labels]
    es = int(np.argmin(lv))
    assert (report["ed"]["frame"], report["es"]["frame"]) == (1, es + 1)
    assert report["es_method"] == "smallest LV cavity volume of the cine's label"
    stored = sitk.ReadImage(datastore.get_image_uri(cine_id))  # the stored grid (NIfTI keeps float32 spacings)
    spacing = tuple(reversed(stored.GetSpacing()[:3]))
    expected = ventricular_function(labels[0], labels[es], spacing)
    assert report["measures"] == pytest.approx(expected, rel=1e-12)
    bsa = math.sqrt(180 * 80 / 3600)
    assert report["bsa_m2"] == pytest.approx(bsa)
    assert report["indexed"]["lv_edv_ml_m2"] == pytest.approx(expected["lv_edv_ml"] / bsa)
    assert report["indexed"]["lv_mass_g_m2"] == pytest.approx(expected["lv_mass_g"] / bsa)
    assert len(report["volume_curve"]["lv_ml"]) == 8
    assert report["volume_curve"]["lv_ml"][es] == pytest.approx(expected["lv_esv_ml"])
    assert report["ed"]["annotator"] == "Dr R" and report["sex"] in ("M", "F")
    ef = next(r for r in report["normal_ranges"] if r["measure"] == "lv_ef_pct")
    assert ef["source"].startswith("Kawel-Boehm") and ef["status"] in ("low", "normal", "high")
    assert ef["status"] == ("low" if ef["value"] < ef["low"] else "high" if ef["value"] > ef["high"] else "normal")


def test_every_format_renders(cine_study):
    datastore, cine_id, _, _ = cine_study
    data = study_data(datastore, cine_id)
    report = build_report(data, QualityChecker(None))
    as_json = json.loads(render(data, report, "json")[0])
    assert as_json["measures"]["lv_edv_ml"] == pytest.approx(report["measures"]["lv_edv_ml"])
    rows = list(csv.DictReader(io.StringIO(render(data, report, "csv")[0].decode())))
    assert {r["measure"] for r in rows} >= {"lv_edv_ml", "lv_ef_pct", "lv_mass_g", "rv_edv_ml", "lv_edv_ml_m2"}
    assert render(data, report, "pdf")[0].startswith(b"%PDF")
    assert render(data, report, "png")[0].startswith(b"\x89PNG")
    page = render(data, report, "html")[0].decode()
    assert "LV EF" in page and "Kawel-Boehm" in page and "data:image/png;base64," in page
    with pytest.raises(CMRAssistError, match="unknown report format"):
        render(data, report, "docx")


def test_a_study_without_an_es_label_is_refused(tmp_path):
    from cmrassist_server.io.studies import phantom_studies

    phantom_studies(str(tmp_path), 1, seed=3)  # ED and ES frames, labelled
    datastore = StudiesWriter(str(tmp_path)).datastore
    report = build_report(study_data(datastore, "phantom003_es"), QualityChecker(None))  # ES finds its ED sibling
    assert report["ed"]["image"] == "phantom003_ed" and report["es"]["image"] == "phantom003_es"
    phantom_studies(str(tmp_path / "bare"), 1, seed=4, labelled_fraction=0.0)
    with pytest.raises(CMRAssistError, match="the ED phase has no label yet") as refused:
        study_data(StudiesWriter(str(tmp_path / "bare")).datastore, "phantom004_ed")
    assert refused.value.status == 409


def test_report_route(server):
    from CMRAssistLib.client import CMRAssistClient

    ids = sorted(CMRAssistClient(server.url).datastore()["objects"])
    labelled = next(i for i in ids if i.endswith("_ed") and i.startswith("phantom011"))
    answer = requests.get(f"{server.url}/report/{labelled}", timeout=120)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    ed, es = (
        sitk.ReadImage(f"{server.studies}/labels/final/{labelled.replace('_ed', s)}.nii.gz") for s in ("_ed", "_es")
    )
    expected = ventricular_function(
        sitk.GetArrayFromImage(ed), sitk.GetArrayFromImage(es), tuple(reversed(ed.GetSpacing()))
    )
    assert body["measures"]["lv_ef_pct"] == pytest.approx(expected["lv_ef_pct"], rel=1e-9)
    pdf = requests.get(f"{server.url}/report/{labelled}", params={"format": "pdf"}, timeout=120)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content[:4] == b"%PDF"
    assert requests.get(f"{server.url}/report/{labelled}", params={"format": "docx"}, timeout=60).status_code == 422
    assert requests.get(f"{server.url}/report/nosuchstudy", timeout=60).status_code == 404
    assert requests.get(f"{server.url}/report/..%2Fetc", timeout=60).status_code in (400, 404)
    unlabelled = next(i for i in ids if i.startswith("phantom040") and i.endswith("_ed"))
    refused = requests.get(f"{server.url}/report/{unlabelled}", timeout=60)
    assert refused.status_code == 409 and "no label yet" in refused.json()["detail"]

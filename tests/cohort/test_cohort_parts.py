"""The parts of a cohort run that need no Ray: subject checks, studies listing, frame choice and the per-subject
analysis (ED/ES from the image info or from the volume curve), the table row, resumable state."""

import hashlib
import json
import math
import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from cmrassist_server.cohort.analyse import AnalysisSettings, SubjectAnalyser
from cmrassist_server.cohort.checks import CheckSettings, count_minima, curve_checks, function_checks
from cmrassist_server.cohort.outputs import CohortOutput
from cmrassist_server.cohort.studies import StudyImage, Subject, group_subjects, list_subjects
from cmrassist_server.cohort.table import COLUMN_NAMES
from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.io.studies import StudiesWriter
from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation
from CMRAssistCore.measures import ventricular_function


def test_the_volume_curve_has_one_minimum_where_es_is():
    one = [150 - 80 * math.sin(math.pi * t / 20) ** 2 for t in range(20)]  # one ejection, one filling
    assert count_minima(one, 8.0) == 1
    two = [150 - 60 * abs(math.sin(2 * math.pi * t / 20)) for t in range(20)]  # two beats in one "cycle"
    assert count_minima(two, 6.0) == 2
    assert count_minima([100.0] * 10, 1.0) == 0
    es = int(np.argmin(one))
    passed = {c["check"]: c["passed"] for c in curve_checks(one, 0, es, True, CheckSettings())}
    assert passed == {"volume_curve": True, "ed_es_timing": True}
    late = {c["check"]: c for c in curve_checks(one, 0, es + 3, True, CheckSettings())}
    assert late["ed_es_timing"]["passed"] is False and late["ed_es_timing"]["value"] == 3
    from_curve = {c["check"]: c["passed"] for c in curve_checks(two, 0, 5, False, CheckSettings())}
    assert from_curve == {"volume_curve": False, "ed_es_timing": None}


def test_stroke_volumes_and_masses_agree_within_the_stated_tolerance():
    s = CheckSettings(sv_ml=20, sv_fraction=0.25, mass_g=20, mass_fraction=0.25)
    ok = {"lv_sv_ml": 80.0, "rv_sv_ml": 70.0, "lv_mass_g": 120.0, "lv_mass_es_g": 135.0}
    assert [c["passed"] for c in function_checks(ok, s)] == [True, True]
    bad = {"lv_sv_ml": 80.0, "rv_sv_ml": 40.0, "lv_mass_g": 120.0, "lv_mass_es_g": 180.0}
    checks = function_checks(bad, s)
    assert [c["passed"] for c in checks] == [False, False] and checks[0]["tolerance"] == 20.0
    assert [c["passed"] for c in function_checks({"lv_sv_ml": None, "rv_sv_ml": 1.0}, s)] == [None, None]


def test_studies_are_listed_from_the_datastore_and_the_folder(tmp_path):
    folder = str(tmp_path / "studies")
    writer = StudiesWriter(folder)
    image = sitk.Image([32, 32, 4], sitk.sitkInt16)
    writer.add_image("sub1_ed", image, {"patient": "sub1", "phase": "ED"})
    writer.add_image("sub1_es", image, {"patient": "sub1", "phase": "ES"})
    sitk.WriteImage(image, os.path.join(folder, "copied_in.nii.gz"))  # not in the datastore JSON yet
    sitk.WriteImage(image, os.path.join(folder, "bad name.nii"))
    subjects = {s.subject_id: s for s in list_subjects(folder)}
    unusable = next(s for s in subjects if s.startswith("unusable-"))
    assert sorted(subjects) == ["copied_in", "sub1", unusable]
    assert [i.image_id for i in subjects["sub1"].images] == ["sub1_ed", "sub1_es"]
    assert subjects["sub1"].images[0].info["phase"] == "ED" and subjects["sub1"].problem is None
    assert subjects[unusable].problem == "image id 'bad name' is not usable: use letters, digits, '_' and '-' only"
    # A DICOM Patient ID may hold any character: the subject's id keeps the readable part and a hash.
    images = [StudyImage("a_cine", "a.nii.gz", {"patient": "12/34^X"}), StudyImage("b_cine", "b.nii.gz", {})]
    ids = [s.subject_id for s in group_subjects(images)]
    assert ids[0] == "12_34_X-" + hashlib.sha1(b"12/34^X").hexdigest()[:8] and ids[1] == "b_cine"
    with pytest.raises(CMRAssistError) as missing:
        list_subjects(str(tmp_path / "nowhere"))
    assert missing.value.status == 404


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(3)
    spec = NetworkSpec(channels=(8, 16, 32))
    publish_segmentation(
        str(folder / "segmentation.pt"),
        spec.build(),
        spec,
        PreprocessConfig(),
        ModelRecord(kind="segmentation", metric="mean"),
    )
    return str(folder / "segmentation.pt")


@pytest.fixture(scope="module")
def cine_subject(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cine")
    phantom = make_phantom(7, n_frames=5)
    path = str(folder / "p7_cine.nii.gz")
    sitk.WriteImage(phantom.cine, path)
    return phantom, path


def test_ed_es_frames_come_from_the_image_info_else_from_the_volume_curve(tiny_model, cine_subject, tmp_path):
    phantom, path = cine_subject
    out = CohortOutput(str(tmp_path / "out"))
    info = {"patient": "p7", "ed_frame": 1, "es_frame": phantom.anatomy.es_frame + 1}
    analyser = SubjectAnalyser(tiny_model, None, AnalysisSettings(frames="ed-es"), out)
    record = analyser.analyse(Subject("p7", (StudyImage("p7_cine", path, info),)), {"test": 1})
    assert [f["frame"] for f in record["frames"]] == [1, info["es_frame"]] and record["curve"] is None
    assert record["ed_es_source"] == "image info" and record["row"]["frames_analysed"] == 2
    ed, es = (sitk.ReadImage(os.path.join(out.out, f["label"])) for f in record["frames"])
    spacing = tuple(reversed(ed.GetSpacing()))
    expected = ventricular_function(sitk.GetArrayFromImage(ed), sitk.GetArrayFromImage(es), spacing)
    ef = expected["lv_ef_pct"]
    assert record["row"]["lv_ef_pct"] == (pytest.approx(ef) if math.isfinite(ef) else None)
    assert set(record["row"]) == set(COLUMN_NAMES) and record["row"]["qc_learned"] is False
    assert out.state("p7", {"test": 1}) == "done" and out.state("p7", {"test": 2}) is None
    # Without ED/ES in the info, "ed-es" needs the whole cine: ED and ES are its largest and smallest LV volume.
    record = analyser.analyse(Subject("p7", (StudyImage("p7_cine", path, {"patient": "p7"}),)), {"test": 3})
    lv = record["curve"]["lv_ml"]
    assert len(record["frames"]) == 5 and record["ed_es_source"] == "volume curve"
    assert (record["ed_frame"], record["es_frame"]) == (int(np.argmax(lv)) + 1, int(np.argmin(lv)) + 1)
    saved = json.load(open(out.subject_path("p7")))
    assert saved["stamp"] == {"test": 3} and saved["row"] == record["row"]

"""QC through a real MONAI Label server on loopback: train task, infer task JSON, scoring and review strategy."""

import json
import os
import time

import numpy as np
import pytest
import SimpleITK as sitk

from CMRAssistLib.client import CMRAssistClient, ServerError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _schema():
    with open(os.path.join(ROOT, "docs", "qc-report.schema.json")) as f:
        return json.load(f)


def _score(client, timeout=120):
    """QC scoring run to its end: started once the server's own scoring has finished (409 while it runs), then
    waited for; what it did."""
    deadline = time.time() + timeout
    while True:
        try:
            task = client.run_scoring("qc")
            break
        except ServerError as e:
            if e.status != 409 or time.time() > deadline:
                raise
            time.sleep(1)
    while time.time() < deadline:
        status = client.scoring_status()
        if status.get("id") == task["id"] and status.get("status") not in ("SUBMITTED", "RUNNING"):
            assert status["status"] == "DONE", status
            return status["last_result"]["qc"]
        time.sleep(0.5)
    raise AssertionError(f"scoring did not finish in {timeout} s")


def test_qc_train_and_infer_answer_json_matching_the_schema(qc_server):
    jsonschema = pytest.importorskip("jsonschema")
    client = CMRAssistClient(qc_server.url)
    assert client.info()["models"]["qc"]["trained"] is True
    subject = sorted(i for i in client.datastore()["objects"] if i.endswith("_ed"))[0][: -len("_ed")]
    ed = client.quality(subject + "_ed")
    jsonschema.validate(ed, _schema())
    assert ed["learned"] and ed["label"] == "prediction" and ed["image"] == subject + "_ed"
    assert ed["qc_model"]["kind"] == "qc" and set(ed["dice_3d"]) == {"rv_cavity", "lv_myocardium", "lv_cavity"}
    assert ed["seconds"]["segmentation"] > 0
    ed = client.quality(subject + "_ed", label="final")
    es = client.quality(subject + "_es", label="final", threshold={"lv_cavity": 0.95})
    jsonschema.validate(es, _schema())
    assert es["label"] == "final" and es["thresholds"]["lv_cavity"] == 0.95
    # The ES report finds the stored ED report of the same subject and adds ejection fractions.
    assert es["function"]["ed_image"] == subject + "_ed" and es["function"]["es_image"] == subject + "_es"
    assert es["function"]["ed_label"] == es["function"]["es_label"] == "final"
    raw = es["function"]["raw"]
    assert raw["lv_edv_ml"] == ed["volumes"]["raw"]["lv_cavity_ml"] and 0 < raw["lv_ef_pct"] < 100


def test_qc_refuses_bad_requests_clearly(qc_server):
    client = CMRAssistClient(qc_server.url)
    objects = client.datastore()["objects"]
    frame = sorted(i for i in objects if i.endswith("_ed"))[0]
    cine = [i for i in objects if i.endswith("_cine")][0]
    unlabelled = [i for i in objects if i.endswith("_ed") and not objects[i].get("labels", {}).get("final")]
    cases = [
        ({"image_id": frame, "threshold": 1.5}, 422, "between 0 and 1"),
        ({"image_id": frame, "threshold": {"lv": 0.5}}, 422, "unknown class"),
        ({"image_id": frame, "label": "../final"}, 400, "invalid label tag"),
        ({"image_id": frame, "label": "nosuchtag"}, 404, "no label tagged"),
        ({"image_id": cine}, 422, "4D cine"),
        ({"image_id": "no_such_study"}, 404, "unknown image"),
    ]
    if unlabelled:
        cases.append(({"image_id": unlabelled[0], "label": "final"}, 404, "no label tagged"))
    for kwargs, status, words in cases:
        with pytest.raises(ServerError) as err:
            client.quality(**kwargs)
        assert err.value.status == status, kwargs
        assert words in str(err.value), (kwargs, str(err.value))


def test_scoring_stores_qc_per_image_and_the_strategy_serves_the_worst_first(fresh_server, tmp_path):
    """No model at all: scoring checks the submitted labels by the rules, and a spoiled label comes first."""
    client = CMRAssistClient(fresh_server.url)
    objects = client.datastore()["objects"]
    labelled = sorted(i for i in objects if objects[i].get("labels", {}).get("final"))
    victim = labelled[1]
    good_path = client.download_label(victim, str(tmp_path))
    good = sitk.ReadImage(good_path)
    array = sitk.GetArrayFromImage(good)
    bad_array = array.copy()
    lv_slices = np.flatnonzero((array == 3).any((1, 2)))
    bad_array[lv_slices[len(lv_slices) // 2]] = 0  # a slice left out in the middle of the LV
    bad_array[bad_array == 1] = 0  # and no RV anywhere
    bad = sitk.GetImageFromArray(bad_array)
    bad.CopyInformation(good)
    bad_path = str(tmp_path / "bad.nii.gz")
    sitk.WriteImage(bad, bad_path)
    client.submit_label(victim, bad_path, annotator="hurried tester", expertise="non-expert")

    # The server also scores in the background (at start-up and after next-sample requests); whoever ran last,
    # the stored report must describe the label now in the datastore.
    result = _score(client)
    assert set(result["checked"]) <= set(labelled)
    results = os.path.join(fresh_server.studies, ".cmrassist", "qc")
    frames = [i for i in labelled if not i.endswith("_cine")]  # a labelled 4D cine is checked through its frames
    assert (
        sorted(n[: -len(".json")] for n in os.listdir(results) if n.endswith(".json")) == frames
    )  # no model: labels only

    def stored_rules():
        stored = json.load(open(os.path.join(results, victim + ".json")))
        assert stored["label"] == "final" and stored["learned"] is False
        return {f["rule"] for s in stored["slices"] for f in s["rules"]} | {f["rule"] for f in stored["frame_rules"]}

    assert {"missing_slice", "class_missing"} <= stored_rules()
    assert client.next_sample("qc")["id"] == victim
    assert _score(client)["checked"] == []  # nothing changed since: every stored report is current

    client.submit_label(victim, good_path, annotator="careful reviewer", expertise="expert")
    _score(client)
    assert stored_rules() == set()
    assert client.next_sample("qc")["id"] != victim

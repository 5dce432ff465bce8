"""Each role against each endpoint (allowed -> answered, not allowed -> 403; no, bogus or revoked token -> 401),
and the account, not the request, says who made a label or a ranking."""

import json
import os

import pytest
import SimpleITK as sitk

IMAGE = "phantom011_ed"
#: ``(method, path, request kwargs, least role)``; allowed requests may still get a domain answer (404, 409, 422).
ENDPOINTS = [
    ("GET", "/info/", {}, "user"),
    ("GET", "/auth/me", {}, "user"),
    ("GET", "/datastore/image/info", {"params": {"image": IMAGE}}, "user"),
    ("POST", "/activelearning/random", {"json": {}}, "user"),
    ("GET", f"/versions/{IMAGE}", {}, "user"),
    ("GET", "/ranking/progress", {}, "user"),
    ("POST", "/ranking/batch", {"json": {"thumbnails": False}}, "annotator"),
    ("PUT", "/datastore/image/info", {"params": {"image": IMAGE}, "data": {"info": '{"note": "x"}'}}, "annotator"),
    ("PUT", "/ranking/cut_points", {"json": {"basal_end": 1600, "apical_start": 1400}}, "reviewer"),
    ("POST", f"/versions/{IMAGE}/accept", {"json": {"version": "nobody"}}, "reviewer"),
    ("POST", "/train/segmentation", {"json": {"max_epochs": 0}}, "admin"),
    ("PUT", "/model_versions/segmentation/current", {"json": {"version": "19990101-000000"}}, "admin"),
    ("GET", "/audit", {}, "admin"),
]
RANK = ["user", "annotator", "reviewer", "admin"]


@pytest.mark.parametrize("method, path, kw, least", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_each_role_against_each_endpoint(team, method, path, kw, least):
    for who, role in (("annotator", "annotator"), ("reviewer", "reviewer"), ("admin", "admin")):
        answer = team.call(who, method, path, **kw)
        if RANK.index(role) >= RANK.index(least):
            assert answer.status_code not in (401, 403) and answer.status_code < 500, (who, answer.text)
        else:
            assert answer.status_code == 403 and least in answer.json()["detail"], (who, answer.text)
    for who in (None, "cmra_bogus_token", "revoked", "not-even-a-token-format"):
        answer = team.call(who, method, path, **kw)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer"), (who, path)
        assert "Traceback" not in answer.text


def test_me_says_who_the_token_is(team):
    me = team.call("expert", "GET", "/auth/me").json()
    assert (me["name"], me["role"], me["expertise"], me["auth"]) == ("Dr Expert", "annotator", "expert", True)
    assert me["may"] == ["user", "annotator"]


def test_a_label_is_recorded_as_the_accounts_whatever_the_body_claims(team, tmp_path):
    image = sitk.ReadImage(os.path.join(team.server.studies, IMAGE + ".nii.gz"))
    label = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    label.CopyInformation(image)
    path = str(tmp_path / "label.nii.gz")
    sitk.WriteImage(label, path)
    params = {"annotator": "Prof Mallory", "expertise": "expert", "accepted_version": "x", "reviewed_by": "Prof M"}
    with open(path, "rb") as f:
        answer = team.call(
            "annotator",
            "PUT",
            "/datastore/label",
            params={"image": IMAGE, "tag": "final"},
            data={"params": json.dumps(params)},
            files={"label": ("l.nii.gz", f)},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["annotator"] == "Ann" and answer.json()["expertise"] == "non_expert"
    versions = team.call("reviewer", "GET", f"/versions/{IMAGE}").json()["versions"]
    mine = [v for v in versions if v["annotator"] == "Ann"]
    assert mine and mine[0]["expertise"] == "non_expert" and "Prof Mallory" not in json.dumps(versions)
    stored = json.loads(team.server.datastore_json())["objects"][IMAGE]["labels"]["final"]["info"]
    assert stored["annotator"] == "Ann" and "accepted_version" not in stored and "reviewed_by" not in stored
    audit = team.call("admin", "GET", "/audit", params={"action": "label_stored"}).json()["entries"]
    assert any(e["actor"] == "Ann" and e["target"] == IMAGE and e["address"] == "127.0.0.1" for e in audit)


def test_a_ranking_batch_belongs_to_the_account(team):
    batch = team.call("expert", "POST", "/ranking/batch", json={"annotator": "Someone Else", "thumbnails": False})
    assert batch.status_code == 200 and batch.json()["annotator"] == "Dr Expert"
    order = [it["id"] for it in batch.json()["items"]]
    stolen = team.call("annotator", "POST", "/ranking/submit", json={"batch": batch.json()["batch"], "order": order})
    assert stolen.status_code == 409  # Ann cannot answer Dr Expert's batch, whatever name she sends
    assert team.call("expert", "POST", "/ranking/submit", json={"batch": batch.json()["batch"], "order": order}).ok

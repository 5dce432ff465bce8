"""Hostile-client findings of the second round (issue 21), each refused cleanly and changing nothing."""

import concurrent.futures
import gzip
import json
import os
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from oidc_provider import Provider
from team_server import make_team

from cmrassist_server.launcher import RunningServer
from cmrassist_server.release.shipped import shipped_folder

IMAGE = "phantom011_ed"
DEEP = "[" * 50000 + "]" * 50000


@pytest.fixture(scope="module")
def provider():
    p = Provider()
    yield p
    p.server.shutdown()


@pytest.fixture(scope="module")
def oidc_team(phantom_studies, tmp_path_factory, provider):
    """A team server that also trusts an OIDC provider, whose ``cmr-viewer`` role is the read-only ``user``."""
    root = tmp_path_factory.mktemp("round2")
    team = make_team(phantom_studies + "_pristine", root, "round2")
    team.server.stop()
    # With the shipped models: the cohort run below needs a segmentation model.
    conf = provider.conf("cmr-viewer=user,cmr-annotator=annotator") + ["--conf", "shipped_dir", shipped_folder()]
    team.server = RunningServer(team.server.studies, team.server.model_dir, str(root / "oidc.log"), conf)
    team.url = team.server.url
    team.tokens["viewer"] = provider.token(roles=["cmr-viewer"], preferred_username="viewer")
    yield team
    team.server.stop()


def put_file(team, who, route, path, params, field="file", data=None):
    with open(path, "rb") as f:
        return team.call(
            who, "PUT", route, params=params, data=data or {"params": "{}"}, files={field: (os.path.basename(path), f)}
        )


def stack(path, values=None, spacing=(1.5, 1.5, 8.0)):
    image = sitk.GetImageFromArray(values if values is not None else np.random.rand(6, 48, 48).astype(np.float32))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path), useCompression=str(path).endswith(".gz"))
    return str(path)


def test_a_padded_nrrd_header_cannot_name_a_server_file(oidc_team, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret " * 400)
    header = b"NRRD0004\n" + b"# padding comment line\n" * 100
    header += b"type: uint8\ndimension: 3\nsizes: 16 16 16\nspacings: 1.5 1.5 8\nencoding: raw\n"
    header += f"data file: {secret}\n\n".encode()
    (tmp_path / "evil.nrrd").write_bytes(header + b"\0" * 5000)
    # The same trick in a MetaImage header and with the field spelt 'datafile' after 64 KiB of comments.
    (tmp_path / "evil2.nrrd").write_bytes(header.replace(b"data file", b"datafile").replace(b"# padding", b"#" * 700))
    (tmp_path / "evil.mha").write_bytes(
        b"ObjectType = Image\nNDims = 3\nDimSize = 16 16 16\n"
        b"ElementType = MET_UCHAR\nElementDataFile = " + str(secret).encode() + b"\n"
    )
    before = oidc_team.server.datastore_json()
    for name in ("evil.nrrd", "evil2.nrrd", "evil.mha"):
        answer = put_file(oidc_team, "annotator", "/datastore/image", tmp_path / name, {"image": "leak_" + name[5]})
        assert answer.status_code == 400, (name, answer.status_code, answer.text)
        fetched = oidc_team.call("annotator", "GET", "/datastore/image", params={"image": "leak_" + name[5]})
        assert b"top secret" not in fetched.content
    assert oidc_team.server.datastore_json() == before


def test_what_a_request_may_write_is_decided_before_any_task_runs(oidc_team):
    before = oidc_team.server.datastore_json()
    for params in ({"store": True}, {"store": "yes"}, {"save_label": True}):
        answer = oidc_team.call(
            "viewer",
            "POST",
            "/infer/propagate",
            params={"image": "phantom040_cine"},
            data={"params": json.dumps(params)},
        )
        assert answer.status_code == 403 and "annotator" in answer.text, (params, answer.text)
    answer = oidc_team.call(
        "viewer",
        "POST",
        "/infer/segmentation",
        params={"image": IMAGE},
        data={"params": json.dumps({"save_label": True})},
    )
    assert answer.status_code == 403
    assert oidc_team.server.datastore_json() == before
    # The read-only role still reads and runs models without storing.
    assert oidc_team.call("viewer", "GET", "/versions/" + IMAGE).status_code == 200


def test_non_finite_voxels_are_refused_in_every_format(oidc_team, tmp_path):
    values = np.random.rand(6, 48, 48).astype(np.float32)
    values[2, 5, 5], values[3, 9, 9] = np.nan, np.inf
    before = oidc_team.server.datastore_json()
    for name in ("nan.nii.gz", "nan.nii", "nan.nrrd"):
        answer = put_file(oidc_team, "annotator", "/datastore/image", stack(tmp_path / name, values), {"image": "nan1"})
        assert answer.status_code == 422 and "NaN" in answer.text, (name, answer.text)
        with open(tmp_path / name, "rb") as f:
            answer = oidc_team.call("annotator", "POST", "/infer/segmentation", files={"file": (name, f)})
        assert answer.status_code == 422 and "NaN" in answer.text, (name, answer.text)
    assert oidc_team.server.datastore_json() == before


def test_ids_and_tags_with_a_trailing_newline_are_refused(oidc_team, tmp_path):
    before = oidc_team.server.datastore_json()
    answer = put_file(oidc_team, "annotator", "/datastore/image", stack(tmp_path / "s.nii.gz"), {"image": "probe\n"})
    assert answer.status_code in (400, 422), answer.text
    label = sitk.ReadImage(os.path.join(oidc_team.server.studies, "labels", "final", IMAGE + ".nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "l.nii.gz"))
    for tag in ("final\n", "mine\n"):
        answer = put_file(
            oidc_team,
            "annotator",
            "/datastore/label",
            tmp_path / "l.nii.gz",
            {"image": IMAGE, "tag": tag},
            field="label",
        )
        assert answer.status_code in (400, 422), (tag, answer.text)
    assert oidc_team.server.datastore_json() == before


def test_scoring_runs_off_the_event_loop_for_reviewers_only(oidc_team):
    assert oidc_team.call("annotator", "POST", "/scoring/qc", params={"run_sync": "true"}).status_code == 403
    answer = oidc_team.call("reviewer", "POST", "/scoring/qc", params={"run_sync": "true"})
    assert answer.status_code == 422 and "run_sync" in answer.text
    assert oidc_team.call("reviewer", "POST", "/scoring/nope").status_code == 404


def test_no_answer_shows_a_server_path(oidc_team):
    studies = os.path.abspath(oidc_team.server.studies)
    for path, params in (
        ("/datastore/image/info", {"image": IMAGE}),
        ("/datastore/", {"output": "train"}),
        ("/datastore/", {"output": "all"}),
        ("/datastore/", {}),
        ("/scoring/", {}),
        ("/batch/analyse", {}),
        ("/info/", {}),
        ("/train/", {}),
        ("/versions/" + IMAGE, {}),
    ):
        for who in ("annotator", "admin"):
            answer = oidc_team.call(who, "GET", path, params=params)
            assert answer.status_code < 500, (path, answer.text)
            for secret in (studies, oidc_team.server.model_dir, os.path.dirname(studies)):
                assert secret not in answer.text, (path, who, secret)


def test_no_input_gets_a_500(oidc_team, tmp_path):
    small = stack(tmp_path / "tiny.nii.gz", np.random.rand(4, 16, 16).astype(np.float32))
    account_id = oidc_team.tokens["annotator"].split("_")[1]
    answers = {
        "label": put_file(
            oidc_team,
            "annotator",
            "/datastore/label",
            small,
            {"image": IMAGE, "tag": "final"},
            field="label",
            data={"params": DEEP},
        ),
        "study": put_file(oidc_team, "annotator", "/datastore/image", small, {"image": "deep"}, data={"params": DEEP}),
        "info": oidc_team.call(
            "annotator", "PUT", "/datastore/image/info", params={"image": IMAGE}, data={"info": DEEP}
        ),
        "infer": oidc_team.call(
            "annotator", "POST", "/infer/segmentation", params={"image": IMAGE}, data={"params": DEEP}
        ),
        "activelearning": oidc_team.call(
            "annotator", "POST", "/activelearning/random", data=DEEP, headers={"content-type": "application/json"}
        ),
        "long token": oidc_team.call(f"cmra_{account_id}_" + "x" * 90, "GET", "/info/"),
        "infinite frame": oidc_team.call(
            "annotator",
            "POST",
            "/infer/slice_position",
            params={"image": IMAGE},
            data={"params": '{"frame": Infinity}'},
        ),
        "NaN option": oidc_team.call(
            "admin",
            "POST",
            "/batch/analyse",
            data='{"cpus_per_worker": NaN}',
            headers={"content-type": "application/json"},
        ),
        "unknown scoring": oidc_team.call("admin", "POST", "/scoring/unknown"),
        "smallest study": put_file(oidc_team, "annotator", "/datastore/image", small, {"image": "tiny16"}),
    }
    for what, answer in answers.items():
        assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text[:300])
        assert "Traceback" not in answer.text
    assert answers["long token"].status_code == 401
    with open(small, "rb") as f:
        answer = oidc_team.call("annotator", "POST", "/infer/segmentation", files={"file": ("tiny.nii.gz", f)})
    assert answer.status_code == 422 and "pixels" in answer.text, answer.text


def test_a_large_image_is_refused_from_its_header_before_any_voxel(tmp_path):
    from cmrassist_server.core.errors import CMRAssistError
    from cmrassist_server.imaging.files import read_untrusted

    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, 640, 640, 640, 1, 1, 1, 1)
    struct.pack_into("<2h", header, 70, 16, 32)
    struct.pack_into("<8f", header, 76, 1, 50, 50, 50, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352.0)
    header[344:348] = b"n+1\x00"
    with gzip.open(tmp_path / "big.nii.gz", "wb") as f:
        f.write(bytes(header) + b"\0" * 1000)  # the voxels are missing: only the header can have refused it
    with pytest.raises(CMRAssistError, match="spacing"):
        read_untrusted(str(tmp_path / "big.nii.gz"))


def test_cohort_runs_one_at_a_time_with_checked_options_and_audited(oidc_team):
    for body in ({"address": "-x:1"}, {"address": "head:99999"}, {"address": "head:0"}):
        answer = oidc_team.call("admin", "POST", "/batch/analyse", json=body)
        assert answer.status_code == 422, (body, answer.text)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: oidc_team.call("admin", "POST", "/batch/analyse", json={}), range(2)))
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    assert oidc_team.call("admin", "DELETE", "/batch/analyse").status_code == 200
    audit = oidc_team.call("admin", "GET", "/audit").json()
    assert "cohort_started" in [entry["action"] for entry in audit["entries"]], audit


def test_rankings_consensus_and_submission_times_are_the_servers(oidc_team, tmp_path):
    batch = oidc_team.call("annotator", "POST", "/ranking/batch", json={"thumbnails": False}).json()
    order = [item["id"] for item in batch["items"]]
    assert oidc_team.call("annotator", "POST", "/ranking/submit", json={"batch": batch["batch"], "order": order}).ok
    actions = [entry["action"] for entry in oidc_team.call("admin", "GET", "/audit").json()["entries"]]
    assert "ranking_submitted" in actions
    answer = oidc_team.call("reviewer", "POST", f"/versions/{IMAGE}/consensus", json={"versions": []})
    assert answer.status_code == 422, answer.text
    label = sitk.ReadImage(os.path.join(oidc_team.server.studies, "labels", "final", IMAGE + ".nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "l.nii.gz"))
    params = json.dumps({"submitted_at": "1999-01-01T00:00:00"})
    answer = put_file(
        oidc_team,
        "expert",
        "/datastore/label",
        tmp_path / "l.nii.gz",
        {"image": IMAGE, "tag": "final"},
        field="label",
        data={"params": params},
    )
    assert answer.ok, answer.text
    versions = oidc_team.call("annotator", "GET", "/versions/" + IMAGE).json()["versions"]
    assert not any(str(v.get("submitted_at", "")).startswith("1999") for v in versions), versions

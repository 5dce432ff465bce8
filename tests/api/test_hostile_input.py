"""Each hostile or careless request found against the server (issue 14), refused cleanly and changing nothing."""

import gzip
import io
import json
import os
import shutil
import struct
import tarfile

import numpy as np
import pytest
import requests
import SimpleITK as sitk

from cmrassist_server.launcher import RunningServer

IMAGE = "phantom011_ed"


@pytest.fixture(scope="module")
def open_server(phantom_studies, tmp_path_factory):
    """A single-user server (loopback, no accounts) of its own."""
    root = tmp_path_factory.mktemp("hostile")
    studies = str(root / "studies")
    shutil.copytree(phantom_studies + "_pristine", studies, ignore=shutil.ignore_patterns(".cmrassist"))
    srv = RunningServer(studies, str(root / "model"), str(root / "server.log"))
    yield srv
    srv.stop()


def call(srv, method, path, **kw):
    return requests.request(method, srv.url + path, timeout=120, **kw)


def stack(tmp_path, name="img.nii.gz", *, spacing=(1.5, 1.5, 8.0), origin=(0, 0, 0), values=None, like=None):
    """A small short-axis-like stack (or a label on ``like``'s grid, then ``values`` fills it)."""
    if like is not None:
        image = sitk.GetImageFromArray(np.asarray(values, np.uint8))
        image.CopyInformation(like)
    else:
        image = sitk.GetImageFromArray(values if values is not None else np.random.rand(6, 32, 32).astype(np.float32))
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
    path = str(tmp_path / name)
    sitk.WriteImage(image, path, useCompression=name.endswith(".gz"))
    return path


def upload(srv, path, image_id, params="{}"):
    with open(path, "rb") as f:
        return call(
            srv,
            "PUT",
            "/datastore/image",
            params={"image": image_id},
            data={"params": params},
            files={"file": (os.path.basename(path), f)},
        )


def submit(srv, path, image_id, params):
    with open(path, "rb") as f:
        return call(
            srv,
            "PUT",
            "/datastore/label",
            params={"image": image_id, "tag": "final"},
            data={"params": json.dumps(params) if isinstance(params, dict) else params},
            files={"label": ("l.nii.gz", f)},
        )


def study_image(srv, image_id=IMAGE):
    return sitk.ReadImage(os.path.join(srv.studies, image_id + ".nii.gz"))


def test_monai_label_routes_the_product_does_not_need_are_gone(open_server, tmp_path):
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        data = b"owned"
        member = tarfile.TarInfo("../owned.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    answer = call(
        open_server, "PUT", "/session/", params={"uncompress": "true"}, files={"files": ("x.tar", evil.getvalue())}
    )
    assert answer.status_code == 404
    assert not [
        p
        for p in ("/tmp/owned.txt", os.path.join(os.path.dirname(open_server.studies), "owned.txt"))
        if os.path.exists(p)
    ]
    for method, path in (
        ("GET", "/logs/"),
        ("GET", "/datastore/dataset"),
        ("DELETE", "/datastore/label"),
        ("DELETE", "/datastore/image"),
        ("PUT", "/model/segmentation"),
        ("POST", "/reload"),
        ("POST", "/train/"),
        ("PUT", "/datastore/label/info"),
        ("GET", "/proxy/dicom/x"),
    ):
        assert call(open_server, method, path, params={"id": IMAGE, "tag": "final"}).status_code == 404, path


def test_no_web_page_can_drive_the_api(open_server):
    answer = call(open_server, "GET", "/info/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers
    preflight = call(
        open_server,
        "OPTIONS",
        "/datastore/label",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert "access-control-allow-origin" not in preflight.headers and "DELETE" not in preflight.headers.get(
        "access-control-allow-methods", ""
    )


def test_files_that_point_elsewhere_are_refused(open_server, tmp_path):
    before = open_server.datastore_json()
    nrrd = tmp_path / "detached.nrrd"
    nrrd.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 16 16 4\nencoding: raw\ndata file: /etc/hostname\n\n")
    mhd = tmp_path / "x.mhd"
    mhd.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 16 16 4\nElementType = MET_UCHAR\nElementDataFile = /etc/hostname\n"
    )
    for path, image_id in ((nrrd, "leak1"), (mhd, "leak2")):
        answer = upload(open_server, str(path), image_id)
        assert answer.status_code == 400 and ("detached" in answer.text or "not a NIfTI" in answer.text), answer.text
    answer = call(open_server, "POST", "/infer/segmentation", params={"image": "/tmp/tmpabc.nii.gz"})
    assert answer.status_code == 400 and "invalid image id" in answer.text
    assert open_server.datastore_json() == before


def test_damaged_info_or_index_never_stops_a_start(open_server):
    bad = call(open_server, "PUT", "/datastore/image/info", params={"image": IMAGE}, data={"info": '{"frame": "abc"}'})
    assert bad.status_code == 422 and "frame" in bad.text
    assert (
        call(open_server, "PUT", "/datastore/image/info", params={"image": IMAGE}, data={"info": "[1]"}).status_code
        == 422
    )
    index = os.path.join(open_server.studies, "datastore_v2.json")
    images = set(json.load(open(index))["objects"])
    with open(index, "r+") as f:  # cut in the middle, as a writer killed in place would leave it
        f.truncate(os.path.getsize(index) // 2)
    open_server.restart()
    assert call(open_server, "POST", "/ranking/sync").status_code == 200
    assert set(json.load(open(index))["objects"]) == images  # recovered from the start-up copy
    assert any(name.startswith("datastore_v2.json.damaged-") for name in os.listdir(open_server.studies))


def test_corrupt_data_is_never_stored_as_ground_truth(open_server, tmp_path):
    before = open_server.datastore_json()
    image = study_image(open_server)
    label = stack(tmp_path, "good.nii.gz", like=image, values=np.zeros(image.GetSize()[::-1]))
    data = open(label, "rb").read()
    (tmp_path / "half.nii.gz").write_bytes(data[: len(data) // 2])
    shifted = sitk.ReadImage(label)
    shifted.SetOrigin(tuple(np.add(image.GetOrigin(), (500, 0, 0))))
    flipped = sitk.ReadImage(label)
    flipped.SetDirection(tuple(np.diag([-1, 1, 1]).ravel().astype(float)))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    sitk.WriteImage(flipped, str(tmp_path / "flipped.nii.gz"))
    for name, words in (("half", "truncated"), ("shifted", "origin"), ("flipped", "orientation")):
        answer = submit(open_server, str(tmp_path / f"{name}.nii.gz"), IMAGE, {"annotator": "Dr A"})
        assert answer.status_code == 400 and words in answer.text, (name, answer.text)
    nan = np.random.rand(6, 32, 32).astype(np.float32)
    nan[2, 5, 5], nan[1, 1, 1] = np.nan, np.inf  # NRRD keeps them (ITK's NIfTI reader does not)
    assert "NaN" in upload(open_server, stack(tmp_path, "nan.nrrd", values=nan), "nanstudy").text
    for spacing in ((1e-3, 1e-3, 8.0), (1e6, 1e6, 8.0)):
        answer = upload(open_server, stack(tmp_path, "sp.nii.gz", spacing=spacing), "tiny")
        assert answer.status_code == 422 and "spacing" in answer.text
    assert open_server.datastore_json() == before


def test_a_gzip_bomb_is_refused_from_its_header(open_server, tmp_path):
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, 1024, 1024, 1024, 1, 1, 1, 1)
    struct.pack_into("<2h", header, 70, 2, 8)
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352.0)
    header[344:348] = b"n+1\x00"
    with gzip.open(tmp_path / "bomb.nii.gz", "wb") as f:
        f.write(bytes(header))
        f.write(b"\0" * (8 << 20))
    answer = upload(open_server, str(tmp_path / "bomb.nii.gz"), "bomb")
    assert answer.status_code == 413 and "voxels" in answer.text


def test_bad_params_get_a_4xx_never_a_500(open_server, tmp_path):
    image = study_image(open_server)
    label = stack(tmp_path, "l.nii.gz", like=image, values=np.zeros(image.GetSize()[::-1]))
    checks = [
        call(open_server, "POST", "/infer/segmentation", params={"image": IMAGE}, data={"params": "[1, 2]"}),
        call(open_server, "POST", "/infer/segmentation", params={"image": IMAGE}, data={"params": "{nope"}),
        submit(open_server, label, IMAGE, "3"),
        upload(open_server, stack(tmp_path), "p1", params='"x"'),
        call(
            open_server, "POST", "/infer/segmentation", params={"image": IMAGE}, data={"params": '{"device": "cuda"}'}
        ),
        call(
            open_server,
            "POST",
            "/infer/qc",
            params={"image": IMAGE, "output": "json"},
            data={"params": '{"threshold": [1]}'},
        ),
        call(open_server, "GET", "/ranking/thumbnail", params={"item": 2**70}),
        call(open_server, "POST", "/train/segmentation", json=[1, 2]),
        call(open_server, "POST", "/train/segmentation", json={"max_epochs": 1e12}),
        call(open_server, "POST", "/train/segmentation", json={"max_minutes": "nan"}),
        call(open_server, "POST", "/train/segmentation", json={"epochs": 3}),
        call(open_server, "POST", "/train/segmentation", params={"run_sync": "true"}, json={"max_epochs": 1}),
    ]
    for answer in checks:
        assert 400 <= answer.status_code < 500 and "Traceback" not in answer.text, (answer.request.url, answer.text)
    missing = call(open_server, "POST", "/infer/segmentation")
    assert missing.status_code == 400 and "image" in missing.text
    with open(stack(tmp_path, "s.nii.gz", spacing=(1e-3, 1e-3, 8.0)), "rb") as f:
        answer = call(open_server, "POST", "/infer/qc", params={"output": "json"}, files={"file": ("s.nii.gz", f)})
    assert answer.status_code == 422 and "spacing" in answer.text


def test_reviewed_labels_stay_and_every_annotator_keeps_a_version(open_server, tmp_path):
    image = study_image(open_server, "phantom012_ed")
    shape = image.GetSize()[::-1]
    label = np.zeros(shape, np.uint8)
    label[:, 10:20, 10:20] = 3

    def submit_as(name, value=3):
        path = stack(tmp_path, f"{abs(hash(name))}.nii.gz", like=image, values=np.where(label > 0, value, 0))
        answer = submit(open_server, path, "phantom012_ed", {"annotator": name, "expertise": "expert"})
        assert answer.status_code == 200, answer.text
        return answer.json()["version"]

    ids = [submit_as(n) for n in ("Dr A", "dr. a", "Dr Möller", "Dr Müller", "王医生", "Consensus")]
    assert len(set(ids)) == 6 and "consensus" not in ids
    twice = call(
        open_server,
        "POST",
        "/versions/phantom012_ed/consensus",
        json={"reviewer": "Prof R", "versions": [ids[0], ids[0]]},
    )
    assert twice.status_code == 409
    nameless = call(
        open_server, "POST", "/versions/phantom012_ed/consensus", json={"reviewer": " ", "versions": ids[:3]}
    )
    assert nameless.status_code == 422
    listed = call(open_server, "GET", "/versions/phantom012_ed").json()
    assert "consensus" not in {v["id"] for v in listed["versions"]}  # the refused consensus wrote nothing
    assert call(
        open_server, "POST", "/versions/phantom012_ed/accept", json={"version": ids[0], "reviewer": "Prof R"}
    ).ok
    final = json.loads(open_server.datastore_json())["objects"]["phantom012_ed"]["labels"]["final"]["info"]
    later = submit_as("Dr Sneaky", value=1)
    path = stack(tmp_path, "sneaky.nii.gz", like=image, values=np.where(label > 0, 2, 0))
    sneaky = submit(open_server, path, "phantom012_ed", {"annotator": "Dr Sneaky2", "accepted_version": ids[0]})
    assert sneaky.status_code == 200 and sneaky.json()["final"] is False
    assert json.loads(open_server.datastore_json())["objects"]["phantom012_ed"]["labels"]["final"]["info"] == final
    names = {v["annotator"] for v in call(open_server, "GET", "/versions/phantom012_ed").json()["versions"]}
    assert {"Dr Sneaky", "Dr Sneaky2", "王医生"} <= names and later
    saved = call(
        open_server,
        "POST",
        "/infer/segmentation",
        params={"image": "phantom012_ed"},
        data={"params": json.dumps({"save_label": True, "label_tag": "final"})},
    )
    assert saved.status_code == 422
    assert json.loads(open_server.datastore_json())["objects"]["phantom012_ed"]["labels"]["final"]["info"] == final


def test_no_server_paths_and_no_one_takes_every_slice(open_server):
    sample = call(open_server, "POST", "/activelearning/random", json={}).json()
    assert sample["id"] and not any(isinstance(v, str) and v.startswith("/") for v in sample.values())
    batches = [
        call(open_server, "POST", "/ranking/batch", json={"annotator": "Greedy", "thumbnails": False}) for _ in range(4)
    ]
    assert [b.status_code for b in batches] == [200, 200, 200, 429]
    other = call(open_server, "POST", "/ranking/batch", json={"annotator": "Fair", "thumbnails": False})
    assert other.status_code == 200

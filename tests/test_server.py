"""End-to-end against a real MONAI Label server on loopback, driven through the project's REST client."""

import json
import os
import time

import numpy as np
import pytest
import SimpleITK as sitk

from CMRAssistCore.measures import dice
from CMRAssistLib.client import CMRAssistClient, ServerError


@pytest.fixture()
def client(server):
    return CMRAssistClient(server.url, timeout=30)


def write(img, path):
    sitk.WriteImage(img, str(path))
    return str(path)


def test_info_lists_the_untrained_model_and_infer_refuses_clearly(fresh_server, tmp_path):
    client = CMRAssistClient(fresh_server.url, timeout=30)
    info = client.info()
    assert info["models"]["segmentation"]["trained"] is False
    assert set(info["models"]["segmentation"]["labels"]) == {"lv_cavity", "lv_myocardium", "rv_cavity"}
    with pytest.raises(ServerError) as e:
        client.infer("phantom011_ed", str(tmp_path))
    assert e.value.status == 409 and "No segmentation model has been trained yet" in str(e.value)


def test_train_then_infer_3d_and_4d_in_the_input_geometry(trained_server, tmp_path):
    client = CMRAssistClient(trained_server.url, timeout=30)
    info = client.info()["models"]["segmentation"]
    assert info["trained"] is True and info["model_record"]["epochs"] >= 1
    status = client.train_status()
    assert status.epoch >= 1 and status.best_val and status.best_score is not None and status.percent == 100.0
    label_path = client.infer("phantom011_ed", str(tmp_path))
    label = sitk.ReadImage(label_path)
    image = sitk.ReadImage(os.path.join(trained_server.studies, "phantom011_ed.nii.gz"))
    assert label.GetSize() == image.GetSize()
    assert np.allclose(label.GetSpacing(), image.GetSpacing()) and np.allclose(label.GetOrigin(), image.GetOrigin())
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1, 2, 3}
    cine_label = sitk.ReadImage(client.infer("phantom040_cine", str(tmp_path)))
    cine = sitk.ReadImage(os.path.join(trained_server.studies, "phantom040_cine.nii.gz"))
    assert cine_label.GetDimension() == 4 and cine_label.GetSize() == cine.GetSize()


def test_submit_label_records_annotator_expertise_and_time(trained_server, tmp_path):
    client = CMRAssistClient(trained_server.url, timeout=30)
    sample = client.next_sample("random")
    image_id = sample["id"]
    label_path = client.infer(image_id, str(tmp_path))
    res = client.submit_label(image_id, label_path, annotator="Dr Ada", expertise="non-expert", extra={"frame": 0})
    assert res["label"] == image_id
    stored = json.loads(trained_server.datastore_json())["objects"][image_id]["labels"]["final"]
    assert stored["info"]["annotator"] == "Dr Ada" and stored["info"]["expertise"] == "non-expert"
    assert stored["info"]["submitted_at"] and stored["info"]["frame"] == 0
    back = client.download_label(image_id, str(tmp_path / "dl") if os.makedirs(tmp_path / "dl") is None else "")
    assert (
        dice(sitk.GetArrayFromImage(sitk.ReadImage(back)), sitk.GetArrayFromImage(sitk.ReadImage(label_path)), 3) == 1.0
    )
    with pytest.raises(ValueError):
        client.submit_label(image_id, label_path, annotator="x", expertise="guru")


def test_upload_a_new_study_then_segment_it(trained_server, tmp_path):
    from cmrassist_server.io.phantoms import make_phantom

    client = CMRAssistClient(trained_server.url, timeout=30)
    p = make_phantom(77, with_cine=False)
    new_id = client.upload_image(
        write(p.ed_image, tmp_path / "new.nii.gz"), image_id="uploaded77", info={"phase": "ED"}
    )
    assert new_id == "uploaded77"
    assert client.image_info("uploaded77")["phase"] == "ED"
    path = client.download_image("uploaded77", str(tmp_path))
    assert sitk.ReadImage(path).GetSize() == p.ed_image.GetSize()


def _bad_cases(tmp_path, studies):
    from cmrassist_server.io.phantoms import make_phantom

    p = make_phantom(11, with_cine=False)  # same seed as phantom011: same grid
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image at all")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    flat = sitk.GetImageFromArray(np.zeros((64, 64), np.float32))
    single = sitk.GetImageFromArray(np.zeros((1, 64, 64), np.float32))
    lab = sitk.GetArrayFromImage(p.ed_label).copy()
    lab[0, 0, 0] = 7
    unknown = sitk.GetImageFromArray(lab)
    unknown.CopyInformation(p.ed_label)
    wrong = sitk.GetImageFromArray(np.zeros((5, 20, 20), np.uint8))
    good_label = write(p.ed_label, tmp_path / "good_label.nii.gz")
    return {
        "corrupt upload": ("upload", str(junk), "junk1"),
        "non-image upload": ("upload", str(text), "text1"),
        "2D image": ("upload", write(flat, tmp_path / "flat.nii.gz"), "flat1"),
        "single-slice volume": ("upload", write(single, tmp_path / "single.nii.gz"), "single1"),
        "path-like upload id": ("upload", write(p.ed_image, tmp_path / "ok.nii.gz"), "../evil"),
        "existing id upload": ("upload", write(p.ed_image, tmp_path / "ok2.nii.gz"), "phantom011_ed"),
        "label with unknown values": ("label", write(unknown, tmp_path / "unk.nii.gz"), "phantom011_ed"),
        "label of the wrong shape": ("label", write(wrong, tmp_path / "wrong.nii.gz"), "phantom011_ed"),
        "label for an unknown image": ("label", good_label, "nosuchimage"),
        "label for a path-like id": ("label", good_label, "../../etc"),
        "infer unknown id": ("infer", None, "nosuchimage"),
        "infer path-like id": ("infer", None, "../phantom011_ed"),
        "infer absolute path": ("infer", None, os.path.join(studies, "phantom011_ed.nii.gz")),
        "info of unknown id": ("info", None, "nosuchimage"),
    }


def test_every_bad_input_gets_a_clear_4xx_and_changes_nothing(trained_server, tmp_path):
    client = CMRAssistClient(trained_server.url, timeout=30)
    before = trained_server.datastore_json()
    files_before = sorted(os.listdir(trained_server.studies))
    for name, (kind, path, image_id) in _bad_cases(tmp_path, trained_server.studies).items():
        with pytest.raises(ServerError) as e:
            if kind == "upload":
                client.upload_image(path, image_id=image_id)
            elif kind == "label":
                client.submit_label(image_id, path, annotator="t", expertise="expert")
            elif kind == "infer":
                client.infer(image_id, str(tmp_path))
            else:
                client.image_info(image_id)
        assert 400 <= e.value.status < 500, f"{name}: {e.value}"
        assert "Traceback" not in str(e.value) and len(str(e.value)) < 600, name
        assert trained_server.datastore_json() == before, f"{name} changed the datastore"
        assert sorted(os.listdir(trained_server.studies)) == files_before, f"{name} wrote a file"


def test_bad_train_params_and_unknown_model_are_refused(server):
    client = CMRAssistClient(server.url, timeout=30)
    for params in ({"max_epochs": "many"}, {"val_split": 1.5}, {"device": "tpu"}, {"network": "resnet"}):
        with pytest.raises(ServerError) as e:
            client.train_start("segmentation", **params)
        assert e.value.status == 422, params
    with pytest.raises(ServerError) as e:
        client.train_start("nosuchmodel")
    assert e.value.status == 404


def test_stopped_server_gives_a_readable_error():
    client = CMRAssistClient("127.0.0.1:9", timeout=2)
    with pytest.raises(ServerError, match="cannot reach server"):
        client.info()


def test_training_can_be_stopped_and_the_served_model_stays(trained_server):
    from cmrassist_server.segmentation.network import load_segmentation

    client = CMRAssistClient(trained_server.url, timeout=30)
    ckpt = os.path.join(trained_server.model_dir, "segmentation.pt")
    client.train_start("segmentation", max_epochs=100, max_minutes=10)
    deadline = time.time() + 60
    while time.time() < deadline and client.train_status().state != "RUNNING":
        time.sleep(0.2)
    assert client.train_status().running
    client.train_stop()
    status = client.train_status()
    assert status.state == "STOPPED" and not status.running and status.message == "training stopped"
    load_segmentation(ckpt)  # the served model is whole
    assert client.info()["models"]["segmentation"]["trained"] is True

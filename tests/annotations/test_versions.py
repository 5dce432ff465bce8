"""Label versions: one per annotator per image, kept across restarts, accepted or merged by STAPLE into final."""

import os

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from cmrassist_server.annotations.versions import LabelVersions, staple, version_id
from cmrassist_server.core.errors import CMRAssistError


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def noisy_copy(label, rng):
    """Each class's boundary moved by a random 1-2 px erosion or dilation on random slices, plus speckle."""
    out = label.copy()
    for k in range(label.shape[0]):
        for value in (1, 2, 3):
            mask = label[k] == value
            if not mask.any():
                continue
            steps = int(rng.integers(1, 3))
            changed = (
                ndimage.binary_dilation(mask, iterations=steps)
                if rng.random() < 0.5
                else ndimage.binary_erosion(mask, iterations=steps)
            )
            out[k][mask & ~changed] = 0
            out[k][changed & (out[k] == 0)] = value
    speckle = rng.random(label.shape) < 0.01
    out[speckle] = rng.integers(0, 4, speckle.sum())
    return out


def test_staple_of_three_noisy_copies_is_closer_to_the_truth_than_each():
    from cmrassist_server.io.phantoms import make_phantom

    truth = sitk.GetArrayFromImage(make_phantom(3, with_cine=False).ed_label)
    rng = np.random.default_rng(0)
    copies = [noisy_copy(truth, rng) for _ in range(3)]
    merged = staple(copies)
    for value in (1, 2, 3):
        each = [dice(c == value, truth == value) for c in copies]
        assert dice(merged == value, truth == value) > max(each), (value, each)


def test_versions_are_per_annotator_and_survive_reopening(tmp_path):
    label = np.zeros((3, 8, 8), np.uint8)
    files = []
    for k in range(3):
        label[:, k, k] = 3
        path = str(tmp_path / f"l{k}.nii.gz")
        sitk.WriteImage(sitk.GetImageFromArray(label), path)
        files.append(path)
    store = LabelVersions(str(tmp_path / "versions"))
    store.add("img", files[0], {"annotator": "Dr A", "expertise": "expert"})
    store.add("img", files[1], {"annotator": "Mr B", "expertise": "non-expert"})
    store.add("img", files[2], {"annotator": "Dr A", "expertise": "expert"})  # A's second go replaces only A's
    reopened = LabelVersions(str(tmp_path / "versions"))
    listed = reopened.list("img")["versions"]
    assert [v["id"] for v in listed] == ["mr-b", "dr-a"] and listed[1]["expertise"] == "expert"
    a = sitk.GetArrayFromImage(sitk.ReadImage(reopened.path("img", "dr-a")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(reopened.path("img", "mr-b")))
    assert a[:, 2, 2].all() and not b[:, 2, 2].any()
    with pytest.raises(CMRAssistError) as missing:
        reopened.get("img", "nobody")
    assert missing.value.status == 404
    with pytest.raises(CMRAssistError):
        version_id("  ")
    with pytest.raises(CMRAssistError) as single:
        LabelVersions(str(tmp_path / "other")).consensus("img")
    assert single.value.status == 409


def test_submissions_accept_and_consensus_through_a_real_server(tmp_path):
    from cmrassist_server.io.studies import phantom_studies
    from cmrassist_server.launcher import RunningServer
    from CMRAssistLib.client import CMRAssistClient, ServerError

    studies = str(tmp_path / "studies")
    phantom_studies(studies, 2, seed=70)
    srv = RunningServer(studies, str(tmp_path / "model"), str(tmp_path / "server.log"))
    try:
        client = CMRAssistClient(srv.url)
        image_id = "phantom070_ed"
        truth = sitk.ReadImage(os.path.join(studies, "labels", "final", image_id + ".nii.gz"))
        rng = np.random.default_rng(1)
        submitted = {}
        for name, expertise in (("Dr A", "expert"), ("Ms B", "non-expert"), ("Mr C", "non-expert")):
            array = noisy_copy(sitk.GetArrayFromImage(truth), rng)
            image = sitk.GetImageFromArray(array)
            image.CopyInformation(truth)
            path = str(tmp_path / f"{version_id(name)}.nii.gz")
            sitk.WriteImage(image, path)
            client.submit_label(image_id, path, annotator=name, expertise=expertise)
            submitted[version_id(name)] = array
        listed = client.label_versions(image_id)
        # The label stored before versions existed (the phantom generator's) is kept as the first version.
        assert [v["id"] for v in listed["versions"]] == ["phantom-generator", "dr-a", "ms-b", "mr-c"]
        assert {v["id"]: v["expertise"] for v in listed["versions"]}["ms-b"] == "non-expert" and listed[
            "accepted"
        ] is None
        for vid, array in submitted.items():  # nobody's submission overwrote another's
            got = sitk.GetArrayFromImage(sitk.ReadImage(client.download_version(image_id, vid, str(tmp_path))))
            assert np.array_equal(got, array)

        def final():  # through the current address (a restart may move the server to another port)
            return sitk.GetArrayFromImage(
                sitk.ReadImage(CMRAssistClient(srv.url).download_label(image_id, str(tmp_path)))
            )

        assert np.array_equal(final(), submitted["mr-c"])  # before review, the latest submission is final
        accepted = client.accept_version(image_id, "dr-a", "Prof R")
        assert accepted["accepted"] == "dr-a" and np.array_equal(final(), submitted["dr-a"])
        assert client.label_info(image_id)["reviewed_by"] == "Prof R"
        client.submit_label(image_id, str(tmp_path / "ms-b.nii.gz"), annotator="Ms B", expertise="non-expert")
        assert np.array_equal(final(), submitted["dr-a"])  # a reviewed final is not replaced by a new submission

        result = client.build_consensus(image_id, "Prof R", ["dr-a", "ms-b", "mr-c"])
        assert result["accepted"] == "consensus"
        merged, reference = final(), sitk.GetArrayFromImage(truth)
        for value in (1, 2, 3):
            each = [dice(a == value, reference == value) for a in submitted.values()]
            assert dice(merged == value, reference == value) > max(each)
        for call, status in (
            (lambda: client.accept_version(image_id, "nobody", "Prof R"), 404),
            (lambda: client.accept_version("no_such_image", "dr-a", "Prof R"), 404),
            (lambda: client.accept_version(image_id, "dr-a", " "), 422),
            (lambda: client.build_consensus(image_id, "Prof R", ["dr-a"]), 409),
            (lambda: client.label_versions("../etc"), 404),
        ):
            with pytest.raises(ServerError) as refused:
                call()
            assert refused.value.status in (status, 400), refused.value
        srv.restart()
        again = CMRAssistClient(srv.url).label_versions(image_id)
        assert again["accepted"] == "consensus" and len(again["versions"]) == 5
        assert np.array_equal(final(), merged)
    finally:
        srv.stop()

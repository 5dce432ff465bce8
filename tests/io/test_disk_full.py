"""A full disk: a submission is answered 507 and changes nothing (labels, versions and the index stay as they were)."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from cmrassist_server.annotations.versions import LabelVersions
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.io.datastore import CheckedDatastore


@pytest.fixture()
def small_disk(tmp_path):
    """A 3 MB tmpfs (the tests run as root, as CI does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    yield str(mount)
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_refuses_a_submission_with_507_and_keeps_everything(phantom_studies, small_disk, tmp_path):
    studies = os.path.join(small_disk, "studies")
    os.makedirs(studies)
    for name in ("phantom011_ed.nii.gz", "datastore_v2.json"):
        shutil.copy(os.path.join(phantom_studies + "_pristine", name), studies)
    shutil.copytree(
        os.path.join(phantom_studies + "_pristine", "labels"),
        os.path.join(studies, "labels"),
        ignore=lambda d, names: [n for n in names if n.endswith(".nii.gz") and "phantom011_ed" not in n],
    )
    store = CheckedDatastore(studies, versions=LabelVersions(os.path.join(studies, ".cmrassist", "versions")))
    image = sitk.ReadImage(os.path.join(studies, "phantom011_ed.nii.gz"))
    label = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 4, image.GetSize()[::-1]).astype(np.uint8))
    label.CopyInformation(image)
    path = str(tmp_path / "label.nii.gz")
    sitk.WriteImage(label, path)
    store.submit("phantom011_ed", path, annotator="Dr A", expertise="expert")
    with open(os.path.join(small_disk, "filler"), "wb") as f:  # fill what is left
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    before = {
        os.path.relpath(os.path.join(d, n), studies): open(os.path.join(d, n), "rb").read()
        for d, _, names in os.walk(studies)
        for n in names
    }
    with pytest.raises(CMRAssistError) as full:
        store.submit("phantom011_ed", path, annotator="Dr B", expertise="expert")
    assert full.value.status == 507 and "disk is full" in str(full.value)
    after = {
        os.path.relpath(os.path.join(d, n), studies): open(os.path.join(d, n), "rb").read()
        for d, _, names in os.walk(studies)
        for n in names
    }
    assert after == before
    assert [v["annotator"] for v in store.versions.list("phantom011_ed")["versions"]][-1] == "Dr A"

"""Cine frames segmented where they are (issue 22, finding 2): the server makes the frame study from its own copy
of the cine (``cine_frame``), nothing is uploaded, and the label is the whole cine's segmentation of that frame."""

import numpy as np
import pytest
import SimpleITK as sitk

from CMRAssistLib.annotation import AnnotationSession
from CMRAssistLib.client import CMRAssistClient, ServerError
from CMRAssistLib.settings import UserSettings

CINE = "phantom040_cine"


def test_frame_7_of_a_cine_is_segmented_on_the_server_without_an_upload(trained_server, tmp_path):
    session = AnnotationSession(UserSettings(trained_server.url, "Dr Ada", "expert"), str(tmp_path))
    cine = session.open_study(CINE)
    frame = 7 if cine.es_frame != 7 else 8
    uploads = []
    session.client.upload_image = lambda *a, **k: uploads.append(a)  # the session must never call it here
    target, label = session.segment_for_viewer(cine, frame)
    assert uploads == [] and target.image_id == f"{CINE}_frame{frame:02d}"
    info = CMRAssistClient(trained_server.url).image_info(target.image_id)
    assert info["source"] == "cine frame (made by the server)" and info["frame"] == frame
    assert info["source_image"] == CINE and info["phase"] == "CINE_FRAME"
    whole = sitk.GetArrayFromImage(sitk.ReadImage(session.segment(cine)))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(label.path)), whole[frame - 1])
    stored = sitk.ReadImage(target.path)  # the viewer's frame file is the server's frame study, voxel for voxel
    (tmp_path / "served").mkdir()
    served = sitk.ReadImage(
        CMRAssistClient(trained_server.url).download_image(target.image_id, str(tmp_path / "served"))
    )
    assert np.array_equal(sitk.GetArrayFromImage(stored), sitk.GetArrayFromImage(served))


@pytest.mark.parametrize("frame, status", [(0, 422), (13, 422)])
def test_a_frame_outside_the_cine_is_refused(trained_server, tmp_path, frame, status):
    client = CMRAssistClient(trained_server.url)
    with pytest.raises(ServerError) as refused:
        client.infer(CINE, str(tmp_path), "segmentation", params={"cine_frame": frame})
    assert refused.value.status == status

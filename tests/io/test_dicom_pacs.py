"""A PACS as the datastore: a real Orthanc (Debian package, started here on a free loopback port with its own
storage) holding two short-axis cine studies; the CMRAssist server on its DICOMweb root lists and serves them,
segments, and a submitted label appears in Orthanc as a DICOM SEG that reads back equal to what was submitted."""

import io
import os
import shutil

import numpy as np
import pydicom
import pytest
import requests
import SimpleITK as sitk

from cmrassist_server.io.dicom.orthanc import RunningOrthanc, orthanc_available
from cmrassist_server.io.dicom.seg import segment_value
from cmrassist_server.io.dicom.writer import study_header, write_cine, write_other_series
from cmrassist_server.io.phantoms import make_phantom
from cmrassist_server.launcher import RunningServer
from CMRAssistLib.client import CMRAssistClient

pytestmark = pytest.mark.slow  # a served model (the session's short training) segments the cines


def grid_places(paths):
    """SOP instance UID -> (phase, slice) of the single-frame cine files written."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    heights = sorted({round(float(h.ImagePositionPatient[2]), 3) for h in headers})
    return {
        str(h.SOPInstanceUID): (
            int(h.TemporalPositionIdentifier) - 1,
            heights.index(round(float(h.ImagePositionPatient[2]), 3)),
        )
        for h in headers
    }


def info_of(client, image_id):
    answer = client.image_info(image_id)
    return answer.get("info", answer)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    assert orthanc_available(), "Orthanc is not installed: run `make test` (scripts/setup_system.sh installs it)"
    root = tmp_path_factory.mktemp("pacs")
    orthanc = RunningOrthanc(str(root / "orthanc"))
    cines, places = {}, {}
    for seed, layout in ((2, "series_per_slice"), (3, "enhanced")):
        p = make_phantom(seed, n_frames=6)
        rng = np.random.default_rng(seed)
        header = study_header(rng, patient_id=f"PACS{seed}", height_cm=175, weight_kg=72)
        folder = str(root / f"dicom{seed}")
        paths = write_cine(p.cine, folder, layout=layout, header=header, rng=rng)
        if layout == "series_per_slice":
            places[f"PACS{seed}"] = grid_places(paths)
        paths += write_other_series(folder, header=header, like=p.cine, rng=rng)
        orthanc.upload(paths)
        cines[f"PACS{seed}"] = p
    yield orthanc, cines, places
    orthanc.stop()


@pytest.fixture(scope="module")
def pacs_server(pacs, trained_server, tmp_path_factory):
    orthanc = pacs[0]
    root = tmp_path_factory.mktemp("pacs_server")
    shutil.copytree(trained_server.model_dir, str(root / "model"), ignore=shutil.ignore_patterns("dicomweb"))
    srv = RunningServer(orthanc.dicomweb, str(root / "model"), str(root / "server.log"))
    yield srv
    srv.stop()


def test_the_server_lists_and_serves_the_cines_of_the_pacs(pacs, pacs_server, tmp_path):
    cines = pacs[1]
    client = CMRAssistClient(pacs_server.url)
    ids = sorted(client.datastore()["objects"])
    for patient, phantom in cines.items():
        cine_id = next(i for i in ids if i.startswith(patient) and i.endswith("_cine"))
        base = cine_id[: -len("_cine")]
        assert {f"{base}_ed", f"{base}_es"} <= set(ids), ids  # a model exists: ED and ES by LV volume
        info = info_of(client, cine_id)
        volumes = info["lv_volumes_ml"]
        assert info["ed_frame"] == int(np.argmax(volumes)) + 1 and info["es_frame"] == int(np.argmin(volumes)) + 1
        path = client.download_image(cine_id, str(tmp_path))
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(sitk.ReadImage(path)), sitk.GetArrayFromImage(phantom.cine)
        )
    assert not any("4ch" in i or "localizer" in i for i in ids)


def test_a_submitted_label_goes_to_the_pacs_as_dicom_seg(pacs, pacs_server, tmp_path):
    orthanc, _, places = pacs
    client = CMRAssistClient(pacs_server.url)
    ed_id = next(i for i in sorted(client.datastore()["objects"]) if i.startswith("PACS2") and i.endswith("_ed"))
    label_path = client.infer(ed_id, str(tmp_path), "segmentation")
    label = sitk.GetArrayFromImage(sitk.ReadImage(label_path))
    assert (label == 3).any()
    label[label == 1] = 0  # the annotator's correction: no RV in this frame
    corrected = sitk.GetImageFromArray(label)
    corrected.CopyInformation(sitk.ReadImage(label_path))
    sitk.WriteImage(corrected, str(tmp_path / "final.nii.gz"))
    client.submit_label(ed_id, str(tmp_path / "final.nii.gz"), annotator="Dr Pacs", expertise="expert")
    segs = orthanc.series("SEG")
    assert len(segs) == 1 and segs[0]["MainDicomTags"]["SeriesDescription"] == "CMRAssist final label: Dr Pacs (expert)"
    instance = segs[0]["Instances"][0]
    ds = pydicom.dcmread(io.BytesIO(requests.get(f"{orthanc.url}/instances/{instance}/file", timeout=30).content))
    assert str(ds.ContentCreatorName) == "Dr Pacs" and ds.Modality == "SEG"
    assert {segment_value(s) for s in ds.SegmentSequence} == {2, 3}  # coded as the module codes them
    import highdicom as hd

    seg = hd.seg.Segmentation.from_dataset(ds)
    sources = [r.ReferencedSOPInstanceUID for s in ds.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence]
    where = [places["PACS2"][uid] for uid in sources]
    assert {t for t, _ in where} == {info_of(client, ed_id)["frame"] - 1}  # the ED phase's own instances
    ordered = [uid for _, uid in sorted(zip([z for _, z in where], sources))]
    by_instance = seg.get_pixels_by_source_instance(ordered, combine_segments=True, relabel=False)
    numbers = {int(s.SegmentNumber): segment_value(s) for s in ds.SegmentSequence}
    read_back = np.vectorize(lambda n: numbers.get(int(n), 0))(by_instance)
    np.testing.assert_array_equal(read_back, label)


def test_seg_in_the_pacs_comes_back_as_a_label_in_a_fresh_cache(pacs, pacs_server, tmp_path):
    from cmrassist_server.io.dicom.dicomweb import DicomWebCineDatastore
    from cmrassist_server.reporting.phases import model_phases
    from cmrassist_server.segmentation.predictor import served_segmentation

    orthanc = pacs[0]
    served = CMRAssistClient(pacs_server.url)
    ed_id = next(i for i in sorted(served.datastore()["objects"]) if i.startswith("PACS2") and i.endswith("_ed"))
    (tmp_path / "served").mkdir()
    expected = sitk.GetArrayFromImage(sitk.ReadImage(served.download_label(ed_id, str(tmp_path / "served"))))
    # Another server on the same PACS with the same model (so the same ED frame), starting from an empty cache.
    served_model = served_segmentation(os.path.join(pacs_server.model_dir, "segmentation.pt"))
    fresh = DicomWebCineDatastore(orthanc.dicomweb, str(tmp_path / "cache"), phases=model_phases(served_model))
    assert fresh.get_label_info(ed_id, "final")["annotator"] == "Dr Pacs"
    assert fresh.get_label_info(ed_id, "final")["expertise"] == "expert"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(fresh.get_label_uri(ed_id, "final"))), expected)

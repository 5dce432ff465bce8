"""The module's scene layer (``CMRAssistLib/slicer_scene.py``) on a real MRML scene with Slicer's own logics.

Geometry is checked against the study file as SimpleITK reads it: Slicer's RAS is ITK's LPS with x and y flipped.
"""

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from scene_helpers import label_of, run

from CMRAssistCore.labels import LV_CAVITY, SEGMENT_NAMES
from CMRAssistLib.frames import extract_frame, join_frames
from CMRAssistLib.slicer_scene import TEMPORARY, segment_id

pytestmark = pytest.mark.slicer
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_ras(volume) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def itk_ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """The IJK-to-RAS matrix of a SimpleITK image (its direction and spacing in LPS, flipped to RAS)."""
    out = np.eye(4)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    out[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    out[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin())
    return out


def assert_same_grid(image: sitk.Image, reference: sitk.Image) -> None:
    """Same size, origin, spacing and direction (NIfTI keeps the direction as float32 quaternions: 1e-6)."""
    assert image.GetSize() == reference.GetSize()
    for get in ("GetOrigin", "GetSpacing", "GetDirection"):
        assert np.allclose(getattr(image, get)(), getattr(reference, get)(), atol=1e-6), get


def voxels(volume) -> np.ndarray:
    from vtk.util import numpy_support

    data = volume.GetImageData()
    return numpy_support.vtk_to_numpy(data.GetPointData().GetScalars()).reshape(tuple(reversed(data.GetDimensions())))


def test_a_3d_frame_is_shown_on_the_file_grid(core, frame_study):
    study, _ = frame_study
    scene = core.cmrassist_scene()
    run(scene.show_study(study))
    reference = sitk.ReadImage(study.path)
    assert np.allclose(ijk_to_ras(scene.volume_node), itk_ijk_to_ras(reference), atol=1e-4)
    assert np.array_equal(voxels(scene.volume_node), sitk.GetArrayFromImage(reference))
    assert core.slice_logics["Red"].GetSliceCompositeNode().GetBackgroundVolumeID() == scene.volume_node.GetID()


def test_a_cine_is_a_volume_sequence_counted_in_frames(core, cine_study):
    scene = core.cmrassist_scene()
    steps = list(_steps(scene.show_study(cine_study)))
    assert len(steps) == cine_study.n_frames  # one frame per step: the GUI thread is free between them
    sequence, browser = scene.volume_sequence, scene.browser_node
    assert sequence.GetNumberOfDataNodes() == cine_study.n_frames
    assert (sequence.GetIndexName(), sequence.GetIndexUnit()) == ("frame", "")
    assert [sequence.GetNthIndexValue(i) for i in range(sequence.GetNumberOfDataNodes())] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    cine = sitk.ReadImage(cine_study.path)
    assert browser.GetSelectedItemNumber() == 0  # ED (frame 1)
    es = extract_frame(cine, 3)
    scene.show_frame(cine_study, 4)
    assert np.array_equal(voxels(scene.volume_node), sitk.GetArrayFromImage(es))
    assert np.allclose(ijk_to_ras(scene.volume_node), itk_ijk_to_ras(es), atol=1e-4)


def test_a_cine_volume_keeps_its_server_id_through_frame_switches(core, cine_study):
    """The browser copies each frame's attributes onto its proxy: the proxy must not forget where it came from,
    or "Use scene volume" offers to upload a study the server holds (409)."""
    scene = core.cmrassist_scene()
    run(scene.show_study(cine_study))
    key = scene.volume_node.GetID()
    for frame in (4, 2, None, 1):
        scene.show_frame(cine_study, frame)
        assert scene.server_image_id(key) == cine_study.image_id


def _steps(steps):
    while True:
        try:
            yield next(steps)
        except StopIteration:
            return


def test_a_segmentation_goes_in_as_three_segments_and_comes_back_on_the_study_grid(core, frame_study, tmp_path):
    study, label = frame_study
    scene = core.cmrassist_scene()
    shown = []
    scene.segmentation_listeners.append(lambda: shown.append(scene.segmentation_node))  # the Segment Editor's
    run(scene.show_study(study))
    run(scene.show_segmentation(study, label))
    assert shown == [scene.segmentation_node]
    segmentation = scene.segmentation_node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == [SEGMENT_NAMES[v] for v in sorted(SEGMENT_NAMES)]
    files = run(scene.export_label(study, str(tmp_path / "export")))
    out = sitk.ReadImage(join_frames(files, study.path, str(tmp_path / "final.nii.gz")))
    assert_same_grid(out, sitk.ReadImage(study.path))
    assert np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(sitk.ReadImage(label.path)))
    volumes = scene.segment_volumes_ml()
    assert volumes["lv_cavity"] > 1.0 and volumes["rv_cavity"] > 1.0


def edit_frame(scene, study, label, truth, frame: int, block, folder) -> np.ndarray:
    """Show ``frame`` and paint ``block`` of its segmentation LV cavity, as an annotator would; the frame's new label."""
    scene.show_frame(study, frame)
    edited = truth[frame - 1].copy()
    edited[block] = LV_CAVITY
    image = sitk.GetImageFromArray(edited)
    image.CopyInformation(sitk.ReadImage(label.frame_files[frame - 1]))
    path = str(folder / f"edit{frame}.nrrd")
    sitk.WriteImage(image, path)
    scene._fill(scene.segmentation_node, path)
    return edited


def test_a_cine_segmentation_keeps_each_frames_edits(core, cine_study, cine_files, tmp_path, vtk_messages):
    scene = core.cmrassist_scene()
    run(scene.show_study(cine_study))
    label = label_of(cine_files[1], str(tmp_path / "label_frames"))
    run(scene.show_segmentation(cine_study, label))
    assert scene.segmentation_sequence.GetNumberOfDataNodes() == cine_study.n_frames
    truth = sitk.GetArrayFromImage(sitk.ReadImage(cine_files[1]))
    # The annotator corrects frame 2: a block of slice 3 becomes LV cavity (an edit of the shown proxy).
    edited = edit_frame(scene, cine_study, label, truth, 2, (3, slice(5, 9), slice(5, 9)), tmp_path)
    scene.show_frame(cine_study, 5)  # browse away and back: the edit stays with frame 2
    scene.show_frame(cine_study, 2)
    assert np.array_equal(scene.label_array(), edited)
    # A last edit on frame 5, submitted without browsing away from it, is in the label too.
    last = edit_frame(scene, cine_study, label, truth, 5, (4, slice(2, 6), slice(2, 6)), tmp_path)
    files = run(scene.export_label(cine_study, str(tmp_path / "export")))
    out = sitk.ReadImage(join_frames(files, cine_study.path, str(tmp_path / "final.nii.gz")))
    expected = truth.copy()
    expected[1], expected[4] = edited, last
    assert np.array_equal(sitk.GetArrayFromImage(out), expected)
    assert_same_grid(out, sitk.ReadImage(cine_study.path))
    assert vtk_messages.GetOutput() == "", vtk_messages.GetOutput()


def test_comparison_layers_sit_beside_the_editable_segmentation(core, frame_study, tmp_path):
    study, label = frame_study
    scene = core.cmrassist_scene()
    run(scene.show_study(study))
    run(scene.show_segmentation(study, label))
    before = scene.label_array()
    shifted = np.roll(before, 2, axis=2)
    image = sitk.GetImageFromArray(shifted)
    image.CopyInformation(sitk.ReadImage(label.path))
    sitk.WriteImage(image, str(tmp_path / "other.nii.gz"))
    other = label_of(str(tmp_path / "other.nii.gz"), str(tmp_path / "other"))
    run(scene.compare_segmentation(study, "Dr B", other))
    run(scene.compare_segmentation(study, "Dr B", other))  # the same name replaces the layer
    nodes = core.scene.GetNodesByClass("vtkMRMLSegmentationNode")
    assert nodes.GetNumberOfItems() == 2
    layer = scene.comparison_nodes["Dr B"]
    assert layer.GetDisplayNode().GetVisibility2DOutline() and not layer.GetDisplayNode().GetVisibility2DFill()
    assert np.array_equal(scene.label_array(layer), shifted) and np.array_equal(scene.label_array(), before)


def test_a_cine_and_its_frame_are_shown_in_the_same_planes_and_jumps_land_on_the_slice(core, cine_study, frame_study):
    for study in (cine_study, frame_study[0]):
        scene = core.cmrassist_scene()
        run(scene.show_study(study))
        k_axis = ijk_to_ras(scene.volume_node)[:3, 2]
        red = core.slice_node("Red").GetSliceToRAS()
        normal = np.array([red.GetElement(r, 2) for r in range(3)])
        # The views are rotated to the (oblique) stack for both: the red view shows whole short-axis slices.
        assert abs(abs(normal @ k_axis) / np.linalg.norm(k_axis) - 1.0) < 1e-6, study.image_id
        image = sitk.ReadImage(study.frame_files[0])
        centre_lps = image.TransformContinuousIndexToPhysicalPoint((19.5, 23.5, 5.0))
        scene.show_slice(study, centre_lps)
        target = LPS_TO_RAS @ np.array(centre_lps)
        for view in ("Red", "Yellow", "Green"):
            plane = core.slice_node(view).GetSliceToRAS()
            n = np.array([plane.GetElement(r, 2) for r in range(3)])
            origin = np.array([plane.GetElement(r, 3) for r in range(3)])
            assert abs(n @ (target - origin)) < 0.01, view


def test_close_scene_and_carry_on(core, cine_study, frame_study, vtk_messages):
    scene = core.cmrassist_scene()
    editor = scene.editor_node()
    run(scene.show_study(cine_study))
    run(scene.show_segmentation(frame_study[0], frame_study[1]))
    core.scene.Clear(0)  # File > Close scene
    assert scene.volume_node is None and scene.segmentation_node is None
    assert scene.editor_node() is editor and core.scene.IsNodePresent(editor)  # the editor keeps its node
    baseline = core.scene.GetNumberOfNodes()
    run(scene.show_study(frame_study[0]))
    run(scene.show_segmentation(frame_study[0], frame_study[1]))
    assert scene.segmentation_node.GetSegmentation().GetNumberOfSegments() == 3
    run(scene.show_study(cine_study))  # replaces the frame and its segmentation, temporary nodes included
    run(scene.show_study(frame_study[0]))
    names = [core.scene.GetNthNode(i).GetName() or "" for i in range(core.scene.GetNumberOfNodes())]
    assert not [n for n in names if n.startswith(TEMPORARY)]
    assert core.scene.GetNumberOfNodes() == baseline + 2  # the volume and its display node
    assert vtk_messages.GetOutput() == "", vtk_messages.GetOutput()


@pytest.fixture()
def vtk_messages():
    """VTK's error and warning output during the test (MRML reports misuse there instead of raising)."""
    previous = vtk.vtkOutputWindow.GetInstance()
    window = vtk.vtkStringOutputWindow()
    vtk.vtkOutputWindow.SetInstance(window)
    yield window
    vtk.vtkOutputWindow.SetInstance(previous)


def test_segment_ids_follow_the_label_values():
    assert [segment_id(v) for v in sorted(SEGMENT_NAMES)] == ["RV_cavity", "LV_myocardium", "LV_cavity"]


class _CountingScene:
    """The real scene, keeping each collection ``GetNodesByClass`` hands out (to read its reference count)."""

    def __init__(self, scene):
        self._scene, self.collections = scene, []

    def GetNodesByClass(self, name):
        collection = self._scene.GetNodesByClass(name)
        self.collections.append(collection)
        return collection

    def __getattr__(self, name):
        return getattr(self._scene, name)


def test_listing_scene_volumes_leaves_no_collection_behind(core, frame_study):
    from CMRAssistLib.slicer_scene import SlicerScene

    run(core.cmrassist_scene().show_study(frame_study[0]))
    counting = _CountingScene(core.scene)
    layer = SlicerScene(counting, sequences=core.logics["Sequences"], app_logic=core.app_logic)
    assert [name for name, _ in layer.volume_choices()] == ["cine_frame04"]
    # Only this test's Python reference is left: the collection goes with it (a leak would hold two).
    assert [c.GetReferenceCount() for c in counting.collections] == [1]

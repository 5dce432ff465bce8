"""The Slicer-bound layer: volumes, cine sequences, segmentation nodes and slice views of one MRML scene.

It uses MRML and module logics only (no Qt, no ``slicer.app``, no ``slicer.util``), handed in by the module, so the
same code runs inside Slicer and on Kitware's ``slicer-core`` wheel in the tests (``Testing/Python``). The Segment
Editor widget lives in the module file; its parameter node is kept here. API checked in Slicer's source (5.4 to
5.10): vtkITKArchetypeImageSeriesScalarReader (read as vtkMRMLVolumeArchetypeStorageNode reads), vtkMRMLSequenceNode,
vtkMRMLSequenceBrowserNode, vtkSlicerSequencesLogic::UpdateProxyNodesFromSequences,
vtkSlicerSegmentationsModuleLogic::ImportLabelmapToSegmentationNode / ExportSegmentsToLabelmapNode,
vtkMRMLApplicationLogic::PropagateVolumeSelection, vtkMRMLSliceNode::JumpAllSlices, vtkMRMLScene::GetSingletonNode,
vtkMRMLVolumeArchetypeStorageNode::WriteData.
Long work is written as steps (see ``scene.py``): one cine frame per step.
"""

import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from CMRAssistCore.labels import COLOURS, SEGMENT_NAMES, TERMINOLOGY
from CMRAssistCore.measures import class_volumes_ml

from .annotation import LabelFile, Study
from .scene import SceneAdapter, Steps

#: Singleton tag of the Segment Editor's parameter node: a singleton survives *Close scene* (it is only reset).
EDITOR_TAG = "CMRAssist"
TEMPORARY = "__cmrassist__"


#: Node attribute holding the server image id of a volume that came from the server (``show_study``).
SERVER_IMAGE = "CMRAssist.ServerImageID"


class SlicerScene(SceneAdapter):
    """Shows studies in one MRML scene and keeps one segmentation node per segmented study.

    Args:
        scene: the MRML scene (``slicer.mrmlScene`` in Slicer).
        sequences: the Sequences module logic.
        app_logic: the application logic (``slicer.app.applicationLogic()``); it drives the slice views.
    """

    def __init__(self, scene, *, sequences, app_logic):
        self.scene, self.sequences, self.app_logic = scene, sequences, app_logic
        #: Called with no argument once a new segmentation is shown (the module binds the Segment Editor to it).
        self.segmentation_listeners: List[Callable[[], None]] = []
        #: Called with no argument after File > Close Scene (the panels drop the study whose nodes went with it).
        self.closed_listeners: List[Callable[[], None]] = []
        self._forget()
        # After *Close scene* every node this object held is gone: forget them rather than remove them again.
        self._observer = scene.AddObserver(slicer.vtkMRMLScene.EndCloseEvent, lambda *_: self._scene_closed())

    def _scene_closed(self) -> None:
        self._forget()
        for listener in list(self.closed_listeners):
            listener()

    def _forget(self) -> None:
        self.volume_node = None  # the study volume, or the cine's proxy volume
        self.browser_node = None  # sequence browser of a cine
        self.volume_sequence = None
        self.segmentation_node = None  # the segmentation, or the proxy of a segmentation sequence
        self.segmentation_sequence = None
        self.comparison_nodes: Dict[str, object] = {}  # name -> read-only segmentation shown for comparison

    def close(self) -> None:
        """Stop observing the scene (module cleanup)."""
        self.scene.RemoveObserver(self._observer)

    # -- the Segment Editor's parameter node ---------------------------------------------------------------------
    def editor_node(self):
        """The Segment Editor parameter node of this module, created if missing (as Slicer's Segment Editor does)."""
        node = self.scene.GetSingletonNode(EDITOR_TAG, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = self.scene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            node.UnRegister(None)
            node.SetSingletonTag(EDITOR_TAG)
            node = self.scene.AddNode(node)
        return node

    # -- studies ------------------------------------------------------------------------------------------------
    def show_study(self, study: Study) -> Steps:
        self._clear()
        files = study.frame_files or [study.path]
        if not study.is_cine:
            self.volume_node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", study.image_id)
            read_volume(self.volume_node, files[0])
            self.volume_node.CreateDefaultDisplayNodes()
            yield 1.0, f"loaded {study.image_id}"
        else:
            # Slicer reads 4D NIfTI only through extensions: build the volume sequence from the frame copies.
            self.volume_sequence = self._new_sequence(study.image_id)
            frame = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", TEMPORARY + "frame")
            # The browser copies each frame's attributes onto its proxy when the frame changes: every frame carries
            # the server id, or the proxy forgets it at the first frame switch.
            frame.SetAttribute(SERVER_IMAGE, study.image_id)
            try:
                for number, path in enumerate(files, start=1):
                    read_volume(frame, path)
                    self.volume_sequence.SetDataNodeAtValue(frame, str(number))  # a copy: the node is reused
                    yield number / len(files), f"frame {number} of {len(files)}"
            finally:
                self._remove(frame)
            self.browser_node = self.scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", study.image_id + " browser")
            self.browser_node.SetAndObserveMasterSequenceNodeID(self.volume_sequence.GetID())
            self._select_item(max((study.ed_frame or 1) - 1, 0))
            self.volume_node = self.browser_node.GetProxyNode(self.volume_sequence)
        self.volume_node.SetAttribute(SERVER_IMAGE, study.image_id)  # saved with the scene: still known after reload
        self._show_volume(self.volume_node)

    def _new_sequence(self, name: str):
        sequence = self.scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
        sequence.SetIndexName("frame")
        sequence.SetIndexUnit("")  # cine frames are counted (1-based, as in ACDC's Info.cfg), not timed
        sequence.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
        return sequence

    def _show_volume(self, volume) -> None:
        """Background of every slice view, views rotated to the volume's planes and fitted: the same for a 3D study
        and a cine (what loading a volume with *show* does in Slicer)."""
        self.app_logic.GetSelectionNode().SetActiveVolumeID(volume.GetID())
        self.app_logic.GetSelectionNode().SetActiveLabelVolumeID(None)
        self.app_logic.PropagateVolumeSelection(1)

    def _select_item(self, index: int) -> None:
        self.browser_node.SetSelectedItemNumber(index)
        self.sequences.UpdateProxyNodesFromSequences(self.browser_node)

    def show_frame(self, study: Study, frame: Optional[int]) -> None:
        if self.browser_node is None:
            return
        self.browser_node.SetPlaybackActive(False)
        if frame is not None:  # None: the whole cine, the user plays it
            self._select_item(frame - 1)

    def show_slice(self, study: Study, center_lps: Sequence[float]) -> None:
        # Slicer's world is RAS; ITK (and the QC report) give LPS: flip x and y.
        x, y, z = (float(v) for v in center_lps)
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.scene, -x, -y, z, slicer.vtkMRMLSliceNode.CenteredJumpSlice)

    # -- segmentations ------------------------------------------------------------------------------------------
    def show_segmentation(self, study: Study, label: LabelFile) -> Steps:
        self._remove_segmentation()
        if len(label.frame_files) == 1:
            self.segmentation_node = self._new_segmentation(study.image_id + " segmentation")
            self._fill(self.segmentation_node, label.frame_files[0])
            yield 1.0, "segmentation shown"
            self._segmentation_shown()
            return
        self.segmentation_sequence = self._new_sequence(study.image_id + " segmentation")
        count = len(label.frame_files)
        # Every frame of a cine has the proxy volume's grid: the frames are filled without browsing the cine,
        # so the views do not redraw for each frame.
        for number, path in enumerate(label.frame_files, start=1):
            frame = self._new_segmentation(TEMPORARY + "segmentation")
            for _ in self._fill_steps(frame, path):
                yield (number - 0.7) / count, f"segmentation of frame {number} of {count}"
            yield (number - 0.4) / count, f"segmentation of frame {number} of {count}"
            self.segmentation_sequence.SetDataNodeAtValue(frame, str(number))
            self._remove(frame)
            yield number / count, f"segmentation of frame {number} of {count}"
        self.browser_node.AddSynchronizedSequenceNodeID(self.segmentation_sequence.GetID())
        self.browser_node.SetSaveChanges(self.segmentation_sequence, True)  # edits in the proxy go back to the frame
        self._select_item(self.browser_node.GetSelectedItemNumber())
        yield 1.0, "segmentation linked to the cine"
        self.segmentation_node = self.browser_node.GetProxyNode(self.segmentation_sequence)
        self.segmentation_node.CreateDefaultDisplayNodes()
        self._segmentation_shown()

    def _segmentation_shown(self) -> None:
        for listener in self.segmentation_listeners:
            listener()

    def compare_segmentation(self, study: Study, name: str, label: LabelFile) -> Steps:
        if len(label.frame_files) != 1:
            raise ValueError("only 3D frame labels can be compared")
        self._remove(self.comparison_nodes.pop(name, None))
        node = self._new_segmentation(name)
        self._fill(node, label.frame_files[0])
        display = node.GetDisplayNode()
        display.SetVisibility2DFill(False)  # outlines only: the editable segmentation stays readable underneath
        display.SetVisibility2DOutline(True)
        self.comparison_nodes[name] = node
        yield 1.0, f"{name} shown"

    def _new_segmentation(self, name: str):
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(self.volume_node)
        segmentation = node.GetSegmentation()
        for value, text in SEGMENT_NAMES.items():
            segment = segmentation.GetSegment(
                segmentation.AddEmptySegment(segment_id(value), text, list(COLOURS[value]))
            )
            segment.SetTag(segment.GetTerminologyEntryTagName(), TERMINOLOGY[value])
            # Our names and colours stay (Slicer's terminology gives both cavities the one colour of blood).
            segment.SetNameAutoGenerated(False)
            segment.SetColorAutoGenerated(False)
        return node

    def _fill(self, node, label_path: str) -> None:
        """Segments from a one-frame label file: label value 1, 2, 3 to the RV, MYO and LV segments."""
        for _ in self._fill_steps(node, label_path):
            pass

    def _fill_steps(self, node, label_path: str) -> Iterator[None]:
        """:meth:`_fill` in two steps (read, then import), so that each holds the GUI thread half as long."""
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", TEMPORARY + "label")
        try:
            read_volume(labelmap, label_path)
            yield
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                labelmap, node, _segment_ids()
            )
        finally:
            self._remove(labelmap)
        if not ok:
            raise RuntimeError(f"could not import the label {label_path} into {node.GetName()}")

    def label_array(self, node=None) -> np.ndarray:
        """The segmentation as a label array (k, j, i) on the shown volume's grid; later classes win overlaps."""
        labelmap = self._export(node or self.segmentation_node)
        try:
            return (
                numpy_support.vtk_to_numpy(labelmap.GetImageData().GetPointData().GetScalars())
                .reshape(tuple(reversed(labelmap.GetImageData().GetDimensions())))
                .astype(np.uint8)
            )
        finally:
            self._remove(labelmap)

    def _export(self, node):
        """A temporary label map node of ``node``'s segments on the shown volume's grid, label values 1, 2, 3."""
        geometry = slicer.vtkOrientedImageData()
        matrix = vtk.vtkMatrix4x4()
        self.volume_node.GetIJKToRASMatrix(matrix)
        geometry.SetImageToWorldMatrix(matrix)
        geometry.SetExtent(self.volume_node.GetImageData().GetExtent())
        values = vtk.vtkIntArray()
        for value in sorted(SEGMENT_NAMES):
            values.InsertNextValue(value)
        merged = slicer.vtkOrientedImageData()
        ok = node.GenerateMergedLabelmapForAllSegments(
            merged, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, geometry, _segment_ids(), values
        )
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", TEMPORARY + "export")
        if not ok or not slicer.vtkSlicerSegmentationsModuleLogic.CreateLabelmapVolumeFromOrientedImageData(
            merged, labelmap
        ):
            self._remove(labelmap)
            raise RuntimeError(f"could not read the segmentation {node.GetName()}")
        return labelmap

    def export_label(self, study: Study, folder: str) -> Steps:
        if self.segmentation_node is None:
            raise RuntimeError("Nothing to submit: segment the study first.")
        os.makedirs(folder, exist_ok=True)
        if self.segmentation_sequence is None:
            paths = [self._write_label(self.segmentation_node, os.path.join(folder, "frame001.nrrd"))]
            yield 1.0, "segmentation read"
            return paths
        # The proxy's latest edits go into their frame first; then each frame is read from the sequence itself,
        # without browsing the cine (no redraw per frame).
        self.sequences.UpdateSequencesFromProxyNodes(self.browser_node, self.segmentation_node)
        count, paths = self.segmentation_sequence.GetNumberOfDataNodes(), []
        for index in range(count):
            labelmap = self._export(self.segmentation_sequence.GetNthDataNode(index))
            yield (index + 0.5) / count, f"segmentation of frame {index + 1} of {count} read"
            path = os.path.join(folder, f"frame{index + 1:03d}.nrrd")
            try:
                self._write(labelmap, path)
            finally:
                self._remove(labelmap)
            paths.append(path)
            yield (index + 1) / count, f"segmentation of frame {index + 1} of {count} written"
        return paths

    def _write_label(self, node, path: str) -> str:
        labelmap = self._export(node)
        try:
            self._write(labelmap, path)
        finally:
            self._remove(labelmap)
        return path

    def _write(self, volume, path: str) -> None:
        storage = self.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode", TEMPORARY + "storage")
        try:
            storage.SetFileName(path)
            storage.SetUseCompression(0)  # the worker compresses; the GUI thread only writes raw voxels
            if not storage.WriteData(volume):
                raise RuntimeError(f"could not write {path}")
        finally:
            self._remove(storage)

    # -- scene volumes ------------------------------------------------------------------------------------------
    def volume_choices(self) -> List[Tuple[str, str]]:
        nodes = self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        nodes.UnRegister(None)  # a new reference the caller owns (as slicer.util.getNodesByClass releases it)
        found = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
        return [
            (n.GetName(), n.GetID())
            for n in found
            if not n.IsA("vtkMRMLLabelMapVolumeNode") and not n.GetName().startswith(TEMPORARY)
        ]

    def server_image_id(self, key: str) -> Optional[str]:
        node = self.scene.GetNodeByID(key)
        return (node.GetAttribute(SERVER_IMAGE) or None) if node is not None else None

    def save_volume(self, key: str, out_path: str) -> str:
        self._write(self.scene.GetNodeByID(key), out_path)
        return out_path

    def segment_volumes_ml(self) -> Dict[str, float]:
        """Volumes (ml) of the shown segments, keyed as :func:`measures.class_volumes_ml` (for the self-test)."""
        # Slicer's spacing is (i, j, k); the label array is (k, j, i).
        return class_volumes_ml(self.label_array(), tuple(reversed(self.volume_node.GetSpacing())))

    # -- housekeeping --------------------------------------------------------------------------------------------
    def _remove(self, node, parts=()) -> None:
        """Remove a node with its display and storage nodes (and ``parts`` collected earlier), those still there."""
        if node is not None and self.scene.IsNodePresent(node):
            parts = list(parts) + _parts(node)
            self.scene.RemoveNode(node)
        for part in parts:
            if self.scene.IsNodePresent(part):
                self.scene.RemoveNode(part)

    def _remove_segmentation(self) -> None:
        parts = _parts(self.segmentation_node)  # a proxy's display node outlives it when the browser drops it
        browser, sequence = self.browser_node, self.segmentation_sequence
        if sequence is not None and browser is not None and self.scene.IsNodePresent(browser):
            browser.RemoveSynchronizedSequenceNode(sequence.GetID())
        self._remove(self.segmentation_node, parts)
        self._remove(self.segmentation_sequence)
        self.segmentation_sequence = self.segmentation_node = None

    def _clear(self) -> None:
        """Remove the previous study's nodes (the panel shows one study at a time)."""
        self._remove_segmentation()
        for node in self.comparison_nodes.values():
            self._remove(node)
        parts = _parts(self.volume_node)
        self._remove(self.browser_node)  # first: a browser would make a new proxy for a sequence left behind
        self._remove(self.volume_node, parts)
        self._remove(self.volume_sequence)
        self._forget()


def read_volume(node, path: str) -> None:
    """Put a one-frame image file into a volume node, as Slicer's volume storage node reads it (vtkITK archetype
    reader, one file, native scalar type and orientation, geometry in the node's IJK-to-RAS matrix), without the
    storage and display nodes and scene events of loading a new volume: a few ms instead of tens per frame."""
    reader = slicer.vtkITKArchetypeImageSeriesScalarReader()
    reader.SetArchetype(path)
    reader.SetSingleFile(1)
    reader.SetOutputScalarTypeToNative()
    reader.SetDesiredCoordinateOrientationToNative()
    reader.SetUseNativeOriginOn()
    reader.Update()
    if reader.GetOutput() is None or reader.GetOutput().GetNumberOfPoints() == 0:
        raise RuntimeError(f"could not read {path}")
    geometry = vtk.vtkImageChangeInformation()  # the node holds the geometry, the image data none
    geometry.SetInputConnection(reader.GetOutputPort())
    geometry.SetOutputSpacing(1, 1, 1)
    geometry.SetOutputOrigin(0, 0, 0)
    geometry.Update()
    image = vtk.vtkImageData()
    image.ShallowCopy(geometry.GetOutput())
    node.SetRASToIJKMatrix(reader.GetRasToIjkMatrix())
    node.SetAndObserveImageData(image)


def _parts(node) -> list:
    """The display and storage nodes of a node (none for ``None`` or a node already gone)."""
    if node is None or node.GetScene() is None:
        return []
    parts = (
        [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
        if node.IsA("vtkMRMLDisplayableNode")
        else []
    )
    storage = node.GetStorageNode() if node.IsA("vtkMRMLStorableNode") else None
    return [p for p in parts + [storage] if p is not None]


def segment_id(value: int) -> str:
    """Segment ID of a label value (``LV_cavity`` ...)."""
    return SEGMENT_NAMES[value].replace(" ", "_")


def _segment_ids():
    ids = vtk.vtkStringArray()
    for value in sorted(SEGMENT_NAMES):  # label value 1, 2, 3 <-> first, second, third ID
        ids.InsertNextValue(segment_id(value))
    return ids

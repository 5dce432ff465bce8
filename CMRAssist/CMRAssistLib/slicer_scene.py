"""The Slicer-bound layer: volumes, cine sequences, segmentation nodes and the Segment Editor.

The only file of CMRAssistLib that imports ``slicer``. API followed: Slicer 5.10.0, every call checked against
Slicer's source (``slicer.util``, ``sitkUtils``, vtkMRMLSequenceBrowserNode, vtkMRMLSequenceNode,
vtkMRMLSegmentationNode, vtkSegment, qMRMLSegmentEditorWidget, vtkSlicerMarkupsLogic::JumpSlicesToLocation); all of them exist from 5.4 on, the oldest
Slicer the module supports (``parameterNodeWrapper`` came in 5.4).
Label files are read and written with SimpleITK on the study file's own grid, so what goes back to the
server has exactly the geometry of the image it came from.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import sitkUtils
import slicer

from .annotation import Study
from .frames import extract_frame
from CMRAssistCore.labels import COLOURS, SEGMENT_NAMES, TERMINOLOGY
from CMRAssistCore.measures import class_volumes_ml
from .scene import SceneAdapter


class SlicerScene(SceneAdapter):
    """Shows studies in Slicer and keeps one segmentation node per segmented study."""

    def __init__(self):
        self.volume_node = None  # the study volume, or the cine's proxy volume
        self.browser_node = None  # sequence browser of a cine
        self.volume_sequence = None
        self.segmentation_node = None  # the segmentation, or the proxy of a segmentation sequence
        self.segmentation_sequence = None
        self.comparison_nodes = {}  # name -> read-only segmentation node shown for comparison
        self.editor = None
        self.editor_node = None

    # -- editor ------------------------------------------------------------------------------------------------
    def editor_widget(self):
        """A Segment Editor widget bound to the scene (embedded in the Annotate panel)."""
        if self.editor is None:
            self.editor = slicer.qMRMLSegmentEditorWidget()
            self.editor.setMRMLScene(slicer.mrmlScene)
            self.editor_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode", "CMRAssistSegmentEditor")
            self.editor.setMRMLSegmentEditorNode(self.editor_node)
        return self.editor

    def _bind_editor(self) -> None:
        if self.editor is None:
            return
        self.editor.setSegmentationNode(self.segmentation_node)
        self.editor.setSourceVolumeNode(self.volume_node)

    # -- studies ------------------------------------------------------------------------------------------------
    def show_study(self, study: Study) -> None:
        self._clear()
        if not study.is_cine:
            self.volume_node = slicer.util.loadVolume(study.path, {"name": study.image_id, "show": True})
            return
        # Slicer reads 4D NIfTI only through extensions: build the volume sequence from the frames ourselves.
        cine = sitk.ReadImage(study.path)
        self.volume_sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", study.image_id)
        self.volume_sequence.SetIndexName("frame")
        for t in range(study.n_frames):
            temp = sitkUtils.PushVolumeToSlicer(extract_frame(cine, t), name="__cmrassist_frame__")
            self.volume_sequence.SetDataNodeAtValue(temp, str(t + 1))
            slicer.mrmlScene.RemoveNode(temp)
        self.browser_node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", study.image_id + " browser")
        self.browser_node.SetAndObserveMasterSequenceNodeID(self.volume_sequence.GetID())
        self.browser_node.SetSelectedItemNumber(max((study.ed_frame or 1) - 1, 0))
        slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(self.browser_node)
        self.volume_node = self.browser_node.GetProxyNode(self.volume_sequence)
        slicer.util.setSliceViewerLayers(background=self.volume_node, fit=True)

    def show_frame(self, study: Study, frame: Optional[int]) -> None:
        if self.browser_node is None:
            return
        if frame is None:  # whole cine: let the user play it
            self.browser_node.SetPlaybackActive(False)
            return
        self.browser_node.SetSelectedItemNumber(frame - 1)
        slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(self.browser_node)

    def show_slice(self, study: Study, center_lps: Sequence[float]) -> None:
        # Slicer's world is RAS; ITK (and the QC report) give LPS: flip x and y.
        x, y, z = (float(v) for v in center_lps)
        slicer.modules.markups.logic().JumpSlicesToLocation(-x, -y, z, True)

    # -- segmentations ------------------------------------------------------------------------------------------
    def show_segmentation(self, study: Study, label_path: str) -> None:
        label = sitk.ReadImage(label_path)
        self._remove_segmentation()
        if label.GetDimension() == 3:
            self.segmentation_node = self._new_segmentation(study.image_id + " segmentation")
            self._fill(self.segmentation_node, sitk.GetArrayFromImage(label))
        else:
            self._show_cine_segmentation(study, sitk.GetArrayFromImage(label))
        self._bind_editor()

    def compare_segmentation(self, study: Study, name: str, label_path: str) -> None:
        label = sitk.ReadImage(label_path)
        if label.GetDimension() != 3:
            raise ValueError("only 3D frame labels can be compared")
        old = self.comparison_nodes.pop(name, None)
        if old is not None and slicer.mrmlScene.IsNodePresent(old):
            slicer.mrmlScene.RemoveNode(old)
        node = self._new_segmentation(name)
        self._fill(node, sitk.GetArrayFromImage(label))
        display = node.GetDisplayNode()
        display.SetVisibility2DFill(False)  # outlines only: the editable segmentation stays readable underneath
        display.SetVisibility2DOutline(True)
        self.comparison_nodes[name] = node

    def _show_cine_segmentation(self, study: Study, labels: np.ndarray) -> None:
        self.segmentation_sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode",
                                                                         study.image_id + " segmentation")
        current = self.browser_node.GetSelectedItemNumber()
        for t in range(labels.shape[0]):
            self.browser_node.SetSelectedItemNumber(t)
            slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(self.browser_node)
            temp = self._new_segmentation("__cmrassist_segmentation__")
            self._fill(temp, labels[t])
            self.segmentation_sequence.SetDataNodeAtValue(temp, str(t + 1))
            slicer.mrmlScene.RemoveNode(temp)
        self.browser_node.AddSynchronizedSequenceNodeID(self.segmentation_sequence.GetID())
        self.browser_node.SetSaveChanges(self.segmentation_sequence, True)  # edits in the proxy go back to the frame
        self.browser_node.SetSelectedItemNumber(current)
        slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(self.browser_node)
        self.segmentation_node = self.browser_node.GetProxyNode(self.segmentation_sequence)
        self.segmentation_node.CreateDefaultDisplayNodes()

    def _new_segmentation(self, name: str):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(self.volume_node)
        segmentation = node.GetSegmentation()
        for value, name in SEGMENT_NAMES.items():
            segment_id = segmentation.AddEmptySegment(_segment_id(value), name, list(COLOURS[value]))
            segment = segmentation.GetSegment(segment_id)
            segment.SetTag(segment.GetTerminologyEntryTagName(), TERMINOLOGY[value])
        return node

    def _fill(self, node, label: np.ndarray) -> None:
        for value in SEGMENT_NAMES:
            mask = (label == value).astype(np.uint8)
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask, node, _segment_id(value), self.volume_node)

    def _read(self, node) -> np.ndarray:
        label = None
        for value in SEGMENT_NAMES:
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, _segment_id(value), self.volume_node)
            if label is None:
                label = np.zeros(mask.shape, np.uint8)
            label[mask > 0] = value  # later classes win where segments overlap after editing
        return label

    def export_label(self, study: Study, out_path: str) -> str:
        if self.segmentation_node is None:
            raise RuntimeError("Nothing to submit: segment the study first.")
        reference = sitk.ReadImage(study.path)
        if self.segmentation_sequence is None:
            out = sitk.GetImageFromArray(self._read(self.segmentation_node))
        else:
            current = self.browser_node.GetSelectedItemNumber()
            frames = []
            for t in range(self.browser_node.GetNumberOfItems()):
                self.browser_node.SetSelectedItemNumber(t)
                slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(self.browser_node)
                frames.append(sitk.GetImageFromArray(self._read(self.segmentation_node)))
            self.browser_node.SetSelectedItemNumber(current)
            out = sitk.JoinSeries(frames)
        out.CopyInformation(reference)
        sitk.WriteImage(out, out_path, useCompression=True)
        return out_path

    # -- scene volumes ------------------------------------------------------------------------------------------
    def volume_choices(self) -> List[Tuple[str, str]]:
        nodes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        return [(n.GetName(), n.GetID()) for n in nodes if not n.IsA("vtkMRMLLabelMapVolumeNode")]

    def save_volume(self, key: str, out_path: str) -> str:
        image = sitkUtils.PullVolumeFromSlicer(slicer.mrmlScene.GetNodeByID(key))
        sitk.WriteImage(image, out_path, useCompression=True)
        return out_path

    # -- housekeeping --------------------------------------------------------------------------------------------
    def _remove_segmentation(self) -> None:
        if self.segmentation_sequence is not None:
            self.browser_node.RemoveSynchronizedSequenceNode(self.segmentation_sequence.GetID())
            slicer.mrmlScene.RemoveNode(self.segmentation_sequence)
            self.segmentation_sequence = None
        if self.segmentation_node is not None and slicer.mrmlScene.IsNodePresent(self.segmentation_node):
            slicer.mrmlScene.RemoveNode(self.segmentation_node)  # also the proxy of a removed sequence
        self.segmentation_node = None

    def _clear(self) -> None:
        """Remove the previous study's nodes (the panel shows one study at a time)."""
        self._remove_segmentation()
        for node in self.comparison_nodes.values():
            if slicer.mrmlScene.IsNodePresent(node):
                slicer.mrmlScene.RemoveNode(node)
        self.comparison_nodes = {}
        for attr in ("browser_node", "volume_sequence", "volume_node"):
            node = getattr(self, attr)
            if node is not None and slicer.mrmlScene.IsNodePresent(node):
                slicer.mrmlScene.RemoveNode(node)
            setattr(self, attr, None)

    def segment_volumes_ml(self) -> Dict[str, float]:
        """Volumes (ml) of the shown segments, keyed as :func:`measures.class_volumes_ml` (for the self-test)."""
        # Slicer's spacing is (i, j, k); the array from _read is (k, j, i).
        return class_volumes_ml(self._read(self.segmentation_node), tuple(reversed(self.volume_node.GetSpacing())))


def _segment_id(value: int) -> str:
    return SEGMENT_NAMES[value].replace(" ", "_")


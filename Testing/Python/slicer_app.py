"""A Slicer application without Qt, on Kitware's ``slicer-core`` wheel: the MRML scene, the application logic,
the module logics CMRAssist uses and the three slice views' logics, set up the way Slicer (and Kitware's
trame-slicer, ``core/slicer_app.py`` and ``views/slice_view.py``) sets them up.

What Slicer's Qt application adds on top (layout manager, slice widgets, the Segment Editor widget) is not here.
"""

import importlib.util
import os
from typing import Dict

import slicer
import vtk

from CMRAssistLib.slicer_scene import SlicerScene

#: Slice views of Slicer's conventional layout and their default orientations.
SLICE_VIEWS = (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal"))


def terminology_folder() -> str:
    """Slicer's terminology files (DICOM master lists) as Kitware ships them in the ``trame-slicer`` wheel."""
    spec = importlib.util.find_spec("trame_slicer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("trame-slicer is not installed (scripts/setup_venv.sh installs it)")
    return os.path.join(list(spec.submodule_search_locations)[0], "resources", "terminologies")


class CoreSlicer:
    """One scene with its logics, as in Slicer: ``scene``, ``app_logic``, ``logics[name]``, ``slice_logics[view]``."""

    def __init__(self):
        self.scene = slicer.vtkMRMLScene()
        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)
        self.app_logic.SetSliceLogics(vtk.vtkCollection())
        self.app_logic.SetViewLogics(vtk.vtkCollection())
        colors = self.app_logic.GetColorLogic()
        colors.SetMRMLScene(self.scene)
        colors.AddDefaultColorNodes()
        self.app_logic.SetModuleLogic("Colors", colors)
        self.logics: Dict[str, object] = {}
        for name, logic, share in (
            ("Terminologies", slicer.vtkSlicerTerminologiesModuleLogic(), terminology_folder()),
            ("Volumes", slicer.vtkSlicerVolumesLogic(), None),
            ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic(), None),
            ("Sequences", slicer.vtkSlicerSequencesLogic(), None),
        ):
            if share:
                logic.SetModuleShareDirectory(share)  # before the scene: the logic loads its files then
            logic.SetMRMLScene(self.scene)
            logic.SetMRMLApplicationLogic(self.app_logic)
            self.app_logic.SetModuleLogic(name, logic)
            self.logics[name] = logic
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(self.scene, True)
        self.slice_logics = {}
        for view, orientation in SLICE_VIEWS:
            logic = slicer.vtkMRMLSliceLogic()
            logic.SetMRMLApplicationLogic(self.app_logic)
            self.app_logic.GetSliceLogics().AddItem(logic)
            logic.SetMRMLScene(self.scene)
            node = logic.AddSliceNode(view)
            node.SetOrientation(orientation)
            node.SetDimensions(256, 256, 1)
            self.slice_logics[view] = logic
        self.layers: list = []

    def cmrassist_scene(self) -> SlicerScene:
        """The module's scene layer on this application, wired as ``CMRAssist.py`` wires it in Slicer."""
        layer = SlicerScene(self.scene, sequences=self.logics["Sequences"], app_logic=self.app_logic)
        self.layers.append(layer)
        return layer

    def close(self) -> None:
        """Stop the scene layers' observers (as the module's cleanup does) before the scene goes."""
        for layer in self.layers:
            layer.close()
        self.layers = []

    def slice_node(self, view: str):
        return self.slice_logics[view].GetSliceNode()

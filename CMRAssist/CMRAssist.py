"""CMRAssist Slicer module: wires the panels of CMRAssistLib to Slicer; the work is done there."""

import ctk
import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from CMRAssistLib.annotation import AnnotationSession
from CMRAssistLib.background import BackgroundRunner
from CMRAssistLib.module_panels import ModulePanels
from CMRAssistLib.parameters import ModuleParameters
from CMRAssistLib.reloading import reload_libraries
from CMRAssistLib.self_test import HOW, SelfTestSteps
from CMRAssistLib.settings import load_settings
from CMRAssistLib.slicer_scene import SlicerScene


class CMRAssist(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CMRAssist"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["Segmentations", "Sequences"]
        self.parent.contributors = ["CMRAssist team"]
        self.parent.helpText = (
            "Short-axis cine MRI with a CMRAssist MONAI Label server: one-click LV cavity, LV myocardium and RV "
            "cavity segmentation, correction, submission with annotator provenance, and retraining."
        )
        self.parent.acknowledgementText = (
            "Uses MONAI Label. ACDC data: O. Bernard et al., IEEE TMI 37(11):2514-2525, 2018."
        )


class CMRAssistWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panels in collapsible sections; the Segment Editor embedded in the Annotate panel follows the lifecycle of
    Slicer's own Segment Editor module (parameter node, shortcuts and effects on enter/exit, scene close)."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = CMRAssistLogic()
        self.runner = BackgroundRunner()  # one worker process for this connection, kept until cleanup
        self.scene = self.logic.scene()
        self.session = AnnotationSession(load_settings(qt.QSettings()), self.logic.workdir())
        self.panels = ModulePanels(
            self.session,
            self.runner,
            self.scene,
            settings_store=qt.QSettings(),
            parameters=ModuleParameters(slicer.mrmlScene),
        )
        self.annotate = self.panels.annotate
        for title, panel, collapsed in self.panels.sections():
            box = ctk.ctkCollapsibleButton()
            box.text = title
            box.collapsed = collapsed
            qt.QVBoxLayout(box).addWidget(panel.widget)
            self.layout.addWidget(box)
        self.layout.addStretch(1)
        self.editor = slicer.qMRMLSegmentEditorWidget()
        self.editor.setMaximumNumberOfUndoStates(10)
        self.editor.setMRMLSegmentEditorNode(self.scene.editor_node())
        self.editor.setMRMLScene(slicer.mrmlScene)
        self.annotate.editor_layout.addWidget(self.editor)
        # Effects registered after this editor was built (e.g. at start-up) join its list, as in Slicer's own module.
        self.panels.follow_effects(slicer.qSlicerSegmentEditorEffectFactory.instance(), self.editor)
        self.scene.segmentation_listeners.append(self._bind_editor)  # a new study, frame or label version
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

    def _bind_editor(self) -> None:
        self.editor.setSegmentationNode(self.scene.segmentation_node)
        self.editor.setSourceVolumeNode(self.scene.volume_node)

    def enter(self):
        self.editor.installKeyboardShortcuts()
        self.editor.setMRMLSegmentEditorNode(self.scene.editor_node())
        self.editor.updateWidgetFromMRML()
        self.annotate.refresh_volumes()

    def exit(self):
        # As Slicer's Segment Editor: no effect left active, shortcuts and view observations released.
        self.editor.setActiveEffect(None)
        self.editor.uninstallKeyboardShortcuts()
        self.editor.removeViewObservations()

    def onSceneStartClose(self, caller, event):
        self.editor.setSegmentationNode(None)
        self.editor.removeViewObservations()

    def onSceneEndClose(self, caller, event):
        self.editor.setMRMLSegmentEditorNode(self.scene.editor_node())  # the singleton survives, reset
        if self.parent.isEntered:
            self.editor.updateWidgetFromMRML()
        self.annotate.refresh_volumes()

    def cleanup(self):
        self.exit()
        self.removeObservers()
        self.panels.cleanup()  # every timer, the effect connection, the scene observer and the worker process

    def onReload(self):
        # Slicer reloads this file only; the panels and measures live in CMRAssistLib and CMRAssistCore.
        reload_libraries(("CMRAssistCore", "CMRAssistLib"))
        ScriptedLoadableModuleWidget.onReload(self)


class CMRAssistLogic(ScriptedLoadableModuleLogic):
    """Entry points used by the widget and the self-test (no GUI code here)."""

    def scene(self) -> SlicerScene:
        return SlicerScene(
            slicer.mrmlScene,
            sequences=slicer.modules.sequences.logic(),
            app_logic=slicer.app.applicationLogic(),
        )

    def workdir(self) -> str:
        import os

        return os.path.join(slicer.app.temporaryPath, "CMRAssist")


class CMRAssistTest(SelfTestSteps, ScriptedLoadableModuleTest):
    """Runs inside Slicer against a live server named by CMRASSIST_TEST_SERVER (e.g. http://127.0.0.1:8000)."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        import unittest

        self.setUp()
        try:
            self.test_CMRAssist_segment_review_submit()
        except unittest.SkipTest:
            self.delayDisplay(f"CMRAssist self-test skipped: {HOW}.")
            return
        self.delayDisplay("CMRAssist self-test passed")

    def make_scene(self) -> SlicerScene:
        return CMRAssistLogic().scene()

    def slice_nodes(self):
        manager = slicer.app.layoutManager()
        return [manager.sliceWidget(name).mrmlSliceNode() for name in ("Red", "Yellow", "Green")]

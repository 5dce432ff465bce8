"""CMRAssist Slicer module: wires the panels of CMRAssistLib to Slicer; the work is done there."""

import os
import tempfile

import ctk
import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from CMRAssistLib.annotate_panel import AnnotatePanel
from CMRAssistLib.annotation import AnnotationSession, Study
from CMRAssistLib.background import BackgroundRunner
from CMRAssistLib.connection_panel import ConnectionPanel
from CMRAssistLib.rank_panel import RankPanel
from CMRAssistLib.review_panel import ReviewPanel
from CMRAssistLib.versions_panel import VersionsPanel
from CMRAssistLib.settings import UserSettings, load_settings
from CMRAssistLib.slicer_scene import SlicerScene
from CMRAssistLib.train_panel import TrainPanel


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
        self.parent.acknowledgementText = "Uses MONAI Label. ACDC data: O. Bernard et al., IEEE TMI 37(11):2514-2525, 2018."


@parameterNodeWrapper
class CMRAssistParameterNode:
    """What the scene remembers: the study on screen and its segmentation."""

    studyImageId: str
    volume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode


class CMRAssistWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = CMRAssistLogic()
        self.runner = BackgroundRunner()
        self.scene = SlicerScene()
        self.session = self.logic.session(load_settings())
        self.connection = ConnectionPanel(self.session, self.runner)
        self.annotate = AnnotatePanel(self.session, self.runner, self.scene, consent_store=qt.QSettings())
        self.annotate.editor_layout.addWidget(self.scene.editor_widget())
        self.annotate.segmented_listeners.append(self.remember)
        self.review = ReviewPanel(self.session, self.runner, self.scene)
        self.annotate.segmented_listeners.append(self.review.study_segmented)
        self.annotate.submitted_listeners.append(self.review.label_submitted)
        self.versions = VersionsPanel(self.session, self.runner, self.scene)
        self.annotate.segmented_listeners.append(self.versions.study_changed)
        self.annotate.submitted_listeners.append(self.versions.study_changed)
        self.rank = RankPanel(self.session, self.runner)
        self.train = TrainPanel(self.session, self.runner)
        self.connection.listeners += [self.annotate.server_changed, self.review.server_changed, self.rank.server_changed,
                                      self.train.server_changed]
        for title, panel, collapsed in (("Connection", self.connection, False), ("Annotate", self.annotate, False),
                                        ("Review", self.review, True), ("Label versions", self.versions, True),
                                        ("Rank slices", self.rank, True),
                                        ("Train", self.train, True)):
            box = ctk.ctkCollapsibleButton()
            box.text = title
            box.collapsed = collapsed
            qt.QVBoxLayout(box).addWidget(panel.widget)
            self.layout.addWidget(box)
        self.layout.addStretch(1)

    def remember(self, study: Study) -> None:
        params = self.logic.getParameterNode()
        params.studyImageId = study.image_id
        params.volume = self.scene.volume_node
        params.segmentation = self.scene.segmentation_node

    def enter(self):
        self.annotate.refresh_volumes()

    def cleanup(self):
        self.train.poll_timer.stop()
        self.runner.shutdown()


class CMRAssistLogic(ScriptedLoadableModuleLogic):
    """Entry points used by the widget and the self-test (no GUI code here)."""

    def getParameterNode(self):
        return CMRAssistParameterNode(super().getParameterNode())

    def session(self, settings: UserSettings) -> AnnotationSession:
        return AnnotationSession(settings, os.path.join(slicer.app.temporaryPath, "CMRAssist"))


class CMRAssistTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer against a live server named by CMRASSIST_TEST_SERVER (e.g. http://127.0.0.1:8000)."""

    def runTest(self):
        self.setUp()
        url = os.environ.get("CMRASSIST_TEST_SERVER")
        if not url:
            self.delayDisplay("CMRAssist self-test skipped: run `make serve` in the CMRAssist repository, then start "
                              "Slicer with CMRASSIST_TEST_SERVER=http://127.0.0.1:8000 and run this test again.")
            return
        self.test_segment_submit_read_back(url)

    def setUp(self):
        slicer.mrmlScene.Clear()

    def test_segment_submit_read_back(self, url):
        import SimpleITK as sitk

        from CMRAssistCore.measures import class_volumes_ml

        session = AnnotationSession(UserSettings(url, "Slicer self-test", "expert"), tempfile.mkdtemp())
        self.assertTrue(session.server_state().segmentation_trained, "the server has no trained model")
        study = session.next_study(session.server_state().strategies[0])
        target = session.frame_study(study, study.ed_frame or 1) if study.is_cine else study
        scene = SlicerScene()
        scene.show_study(target)
        label_path = session.segment(target)
        scene.show_segmentation(target, label_path)
        segmentation = scene.segmentation_node.GetSegmentation()
        self.assertEqual(segmentation.GetNumberOfSegments(), 3)
        label = sitk.ReadImage(label_path)
        expected = class_volumes_ml(sitk.GetArrayFromImage(label), tuple(reversed(label.GetSpacing())))
        shown = scene.segment_volumes_ml()
        for key in ("lv_cavity", "lv_myocardium", "rv_cavity"):
            self.assertGreater(shown[key], 1.0, f"{key} is empty")
            self.assertAlmostEqual(shown[key], expected[key], delta=0.01 * expected[key])
        # Review: the QC report's slice centres move the slice views there (the red view is axial: offset = S).
        report = session.quality(target)
        self.assertEqual(len(report["slices"]), report["summary"]["slices"])
        centre = report["slices"][len(report["slices"]) // 2]["center_lps"]
        scene.show_slice(target, centre)
        red = slicer.app.layoutManager().sliceWidget("Red").sliceLogic()
        self.assertAlmostEqual(red.GetSliceOffset(), centre[2], delta=0.5)
        exported = scene.export_label(target, os.path.join(session.workdir, "self_test_final.nii.gz"))
        session.submit(target, exported)
        info = session.client.label_info(target.image_id)
        self.assertEqual(info["info"]["annotator"], "Slicer self-test")
        self.delayDisplay("CMRAssist self-test passed")

"""The module's self-test, written once for Slicer and for the tests here.

``CMRAssistTest`` (``CMRAssist.py``) mixes :class:`SelfTestSteps` into Slicer's ``ScriptedLoadableModuleTest``:
*Reload and Test* calls ``runTest``, and the ctest of ``slicer_add_python_unittest`` loads the class with
``unittest.TestLoader().loadTestsFromName``, which calls every ``test*`` method with no argument, so none takes
one. ``tests/module/test_slicer_selftest.py`` runs the same steps on a slicer-core scene against a real server.
"""

import os
import tempfile
import unittest
from typing import Any, List, Sequence

from CMRAssistCore.measures import class_volumes_ml

from .annotation import AnnotationSession
from .settings import UserSettings

SERVER_VARIABLE = "CMRASSIST_TEST_SERVER"
TOKEN_VARIABLE = "CMRASSIST_TEST_TOKEN"  # a server with sign-in: an annotator's (or higher) API token
HOW = (
    "the CMRAssist self-test needs a running server: run `make serve` in the CMRAssist repository, then start "
    f"Slicer with {SERVER_VARIABLE}=http://127.0.0.1:8000 (and {TOKEN_VARIABLE} for a server with sign-in) and run "
    "this test again"
)


def drive(steps) -> Any:
    """Run scene steps to the end (a test may hold the GUI thread); their result."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def distance_to_slice_plane(slice_node, ras: Sequence[float]) -> float:
    """How far (mm) a RAS point is from the plane a slice view shows, whatever the view's orientation."""
    plane = slice_node.GetSliceToRAS()
    normal = [plane.GetElement(r, 2) for r in range(3)]
    origin = [plane.GetElement(r, 3) for r in range(3)]
    length = sum(n * n for n in normal) ** 0.5
    return abs(sum(n * (p - o) for n, p, o in zip(normal, ras, origin))) / length


class SelfTestSteps:
    """Segment a study from the server, check it in the scene, jump to a QC slice, submit and read back.

    A subclass provides :meth:`make_scene` (the module's scene layer) and :meth:`slice_nodes` (the slice views).
    """

    def make_scene(self):
        raise NotImplementedError

    def slice_nodes(self) -> List[Any]:
        raise NotImplementedError

    def test_CMRAssist_segment_review_submit(self) -> None:
        url = os.environ.get(SERVER_VARIABLE)
        if not url:
            raise unittest.SkipTest(HOW)
        token = os.environ.get(TOKEN_VARIABLE, "")
        session = AnnotationSession(UserSettings(url, "Slicer self-test", "expert", token), tempfile.mkdtemp())
        state = session.server_state()
        annotator = state.account.name if state.account.signed_in else "Slicer self-test"
        self.assertTrue(state.segmentation_trained, "the server has no trained model")
        study = session.next_study(state.strategies[0])
        target, label = session.segment_for_viewer(study, study.ed_frame or 1)
        scene = self.make_scene()
        drive(scene.show_study(study))
        scene.show_frame(study, target.info.get("frame"))
        drive(scene.show_segmentation(target, label))
        self.assertEqual(scene.segmentation_node.GetSegmentation().GetNumberOfSegments(), 3)
        self._check_volumes(scene, label.path)
        # Review: the QC report's slice centre (LPS) lies in every slice view after the jump, in any orientation.
        report = session.quality(target)
        self.assertEqual(len(report["slices"]), report["summary"]["slices"])
        centre = report["slices"][len(report["slices"]) // 2]["center_lps"]
        scene.show_slice(target, centre)
        ras = (-centre[0], -centre[1], centre[2])
        for node in self.slice_nodes():
            self.assertLess(distance_to_slice_plane(node, ras), 0.5, node.GetName())
        files = drive(scene.export_label(target, os.path.join(session.workdir, "self_test_export")))
        session.submit_frames(target, files)
        self.assertEqual(session.client.label_info(target.image_id)["annotator"], annotator)

    def _check_volumes(self, scene, label_path: str) -> None:
        import SimpleITK as sitk

        label = sitk.ReadImage(label_path)
        expected = class_volumes_ml(sitk.GetArrayFromImage(label), tuple(reversed(label.GetSpacing())))
        shown = scene.segment_volumes_ml()
        for key in ("lv_cavity", "lv_myocardium", "rv_cavity"):
            self.assertGreater(shown[key], 1.0, f"{key} is empty")
            self.assertAlmostEqual(shown[key], expected[key], delta=0.01 * expected[key])

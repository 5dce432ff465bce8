"""CMRAssist Slicer module (entry point).

This release carries the module's identity, its logic entry point (the REST client) and its self-test; the
annotation, review and ranking panels are built on this in the following releases (see the issues).
"""

import os

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from CMRAssistLib.client import CMRAssistClient


class CMRAssist(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CMRAssist"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = []
        self.parent.contributors = ["CMRAssist team"]
        self.parent.helpText = (
            "Short-axis cine MRI with a CMRAssist MONAI Label server: one-click LV cavity, LV myocardium and RV "
            "cavity segmentation, correction, submission with annotator provenance, and retraining."
        )
        self.parent.acknowledgementText = (
            "Uses MONAI Label. ACDC data: O. Bernard et al., IEEE TMI 37(11):2514-2525, 2018."
        )


class CMRAssistWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        label = qt.QLabel(
            "Start a server with `make serve` in the CMRAssist repository; the annotation panels of this "
            "module connect to it."
        )
        label.wordWrap = True
        self.layout.addWidget(label)
        self.layout.addStretch(1)


class CMRAssistLogic(ScriptedLoadableModuleLogic):
    """Entry points used by the panels and the self-test (no GUI code here)."""

    def client(self, server_url: str) -> CMRAssistClient:
        return CMRAssistClient(server_url)


class CMRAssistTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer against a live server named by CMRASSIST_TEST_SERVER (e.g. http://127.0.0.1:8000)."""

    def runTest(self):
        self.setUp()
        url = os.environ.get("CMRASSIST_TEST_SERVER")
        if not url:
            self.delayDisplay("CMRAssist self-test skipped: start `make serve` and set CMRASSIST_TEST_SERVER to its URL")
            return
        self.test_server_answers(url)

    def setUp(self):
        slicer.mrmlScene.Clear()

    def test_server_answers(self, url):
        info = CMRAssistLogic().client(url).info()
        self.assertIn("segmentation", info["models"])
        self.delayDisplay("CMRAssist server answered")

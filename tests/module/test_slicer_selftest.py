"""The module's self-test, run the way Slicer's ctest runs it, on a slicer-core scene against a real server.

Slicer itself cannot be installed here; ``CMRAssistTest`` in ``CMRAssist.py`` is ``SelfTestSteps`` mixed into
Slicer's ``ScriptedLoadableModuleTest``, and ``slicer.testing.runUnitTest`` (Slicer's ``Base/Python/slicer/
testing.py``) loads it with ``unittest.TestLoader().loadTestsFromName`` and runs it with a ``TextTestRunner``.
"""

import ast
import io
import os
import unittest

import pytest
from slicer_app import CoreSlicer

from CMRAssistLib.self_test import SERVER_VARIABLE, SelfTestSteps

pytestmark = pytest.mark.slicer
MODULE_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "CMRAssist", "CMRAssist.py"
)


class CoreSelfTest(SelfTestSteps, unittest.TestCase):
    """The self-test on Slicer's libraries without Qt: the three slice views are the scene's slice nodes."""

    __test__ = False  # run by the unittest loader below, as ctest runs it, not collected by pytest itself

    def setUp(self):
        self.core = CoreSlicer()

    def tearDown(self):
        self.core.close()

    def make_scene(self):
        return self.core.cmrassist_scene()

    def slice_nodes(self):
        return [self.core.slice_node(view) for view in ("Red", "Yellow", "Green")]


def run_like_ctest() -> unittest.TestResult:
    suite = unittest.TestLoader().loadTestsFromTestCase(CoreSelfTest)
    return unittest.TextTestRunner(stream=io.StringIO(), verbosity=2).run(suite)


def test_the_self_test_passes_as_ctest_runs_it(trained_server, monkeypatch):
    monkeypatch.setenv(SERVER_VARIABLE, trained_server.url)
    result = run_like_ctest()
    assert result.testsRun == 1 and not result.skipped, result.skipped
    assert result.wasSuccessful(), [text for _, text in result.errors + result.failures]


def test_without_a_server_it_says_how_to_run_it(monkeypatch):
    monkeypatch.delenv(SERVER_VARIABLE, raising=False)
    result = run_like_ctest()
    assert result.wasSuccessful() and len(result.skipped) == 1
    assert "make serve" in result.skipped[0][1]


def test_the_modules_test_class_is_these_steps_and_no_test_method_takes_an_argument():
    with open(MODULE_FILE) as f:
        tree = ast.parse(f.read())
    test_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CMRAssistTest")
    assert [b.id for b in test_class.bases if isinstance(b, ast.Name)] == [
        "SelfTestSteps",
        "ScriptedLoadableModuleTest",
    ]
    loader = unittest.TestLoader()
    for cls in (test_class,):
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith(loader.testMethodPrefix):
                assert [a.arg for a in node.args.args] == ["self"], node.name
    for name in loader.getTestCaseNames(CoreSelfTest):
        assert getattr(SelfTestSteps, name).__code__.co_argcount == 1, name

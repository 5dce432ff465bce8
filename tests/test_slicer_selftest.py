"""The module's self-test needs a real 3D Slicer, which cannot be installed here: CI skips it and says how to run it."""

import os

import pytest

HOW = ("the CMRAssist Slicer self-test runs inside 3D Slicer 5.4+: start `make serve`, add CMRAssist/ to Slicer's "
       "Additional module paths, start Slicer with CMRASSIST_TEST_SERVER=http://127.0.0.1:8000 and press "
       "'Reload and Test' in the module (or build the extension and run its tests with ctest)")


def test_slicer_self_test():
    try:
        import slicer  # noqa: F401

        in_slicer = hasattr(slicer, "mrmlScene")  # PyPI has an unrelated package named slicer
    except ImportError:
        in_slicer = False
    if not in_slicer:
        pytest.skip(HOW)
    import CMRAssist  # noqa: F401  (inside Slicer the module is importable)

    test = CMRAssist.CMRAssistTest()
    if not os.environ.get("CMRASSIST_TEST_SERVER"):
        pytest.skip(HOW)
    test.runTest()

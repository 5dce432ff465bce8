"""Qt's event loop as Slicer's GUI thread runs it: holding Python's lock (PythonQt's thread support is off).

PySide6 releases the lock while Qt waits for events, so Python worker threads run freely in the tests; Slicer's
PythonQt does not, so there a Python worker thread advances only while the GUI thread itself runs Python.
:func:`idle_like_slicer` calls ``QEventLoop::exec`` through ``ctypes.PyDLL`` (which keeps the lock during the
call): callbacks on the GUI thread run as usual, other Python threads wait, exactly as in Slicer.
"""

import ctypes
import os
from typing import Callable, Optional

import PySide6
import shiboken6
from PySide6.QtCore import QEventLoop, QTimer

_QTCORE = os.path.join(os.path.dirname(PySide6.__file__), "Qt", "lib", "libQt6Core.so.6")
_exec = ctypes.PyDLL(_QTCORE)["_ZN10QEventLoop4execE6QFlagsINS_17ProcessEventsFlagEE"]
_exec.argtypes = [ctypes.c_void_p, ctypes.c_int]
_exec.restype = ctypes.c_int


def exec_holding_the_lock(loop: QEventLoop) -> None:
    """``loop.exec()`` as PythonQt runs it: Python's lock stays with this (the GUI) thread."""
    _exec(shiboken6.getCppPointer(loop)[0], 0)


def idle_like_slicer(max_ms: int, until: Optional[Callable[[], bool]] = None, check_ms: int = 20) -> None:
    """Let Qt's event loop run, holding Python's lock, for ``max_ms`` or until ``until()`` holds."""
    loop = QEventLoop()
    QTimer.singleShot(max_ms, loop.quit)
    checker = QTimer()
    if until is not None:
        checker.setInterval(check_ms)
        checker.timeout.connect(lambda: until() and loop.quit())
        checker.start()
    exec_holding_the_lock(loop)
    checker.stop()

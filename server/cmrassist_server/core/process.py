"""Child processes of the server: they end with it (a training process must not outlive a server killed with -9)
and run at a lower CPU priority than its requests."""

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def background_child(niceness: int = 10) -> None:
    """What a training or scoring process of the server does first: end with the server, and yield the CPU to the
    server's interactive requests (one-click segmentation stays fast while QC re-scores every study)."""
    die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(niceness)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies; exit now if the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except OSError:
        return
    if os.getppid() != parent or parent == 1:  # the parent died before the request was made
        os._exit(1)

"""Interactive requests first (issue 23): background work (QC scoring, in its child process) waits between steps
while any interactive request runs, so a click during a scoring pass is answered before the pass's next image.

One lock file in the model folder, shared by the server and its child processes: each interactive request holds
it shared (never waiting: requests only ever share it); background work takes it exclusively for an instant
before each step, which waits exactly while a request holds it. Linux ``flock`` lets new shared holders in while
an exclusive one waits, so requests never queue behind background work.
"""

import asyncio
import fcntl
import os
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

#: The lock file, in the model folder.
LOCK = ".foreground.lock"


class Foreground:
    """The interactive requests of one server, as background work sees them.

    Args:
        folder: the server's model folder (its child processes share it).
    """

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, LOCK)

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Held while an interactive request runs: background work waits at its next step. Taken without ever
        blocking the event loop: background work holds the lock only for an instant, so a retry soon gets it."""
        with open(self.path, "a") as f:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def wait(self) -> float:
        """Background work calls this before each step: it returns once no interactive request runs; the seconds
        it waited."""
        start = time.monotonic()
        with open(self.path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            fcntl.flock(f, fcntl.LOCK_UN)
        return time.monotonic() - start

"""Interactive requests first, across processes as the server and its scoring child run: background work waits
while a request runs and goes on once it ends; a new request never waits behind waiting background work."""

import asyncio
import fcntl
import multiprocessing
import os
import time

from cmrassist_server.core.foreground import LOCK, Foreground


def _background_step(folder: str, started, done_at) -> None:
    started.set()
    Foreground(folder).wait()
    done_at.value = time.monotonic()


def test_background_work_waits_for_the_request_and_a_new_request_does_not_wait(tmp_path):
    asyncio.run(_request_during_background_work(str(tmp_path)))


async def _request_during_background_work(folder: str) -> None:
    foreground = Foreground(folder)
    context = multiprocessing.get_context("spawn")  # a separate process, as MONAI Label's scoring child is
    started, done_at = context.Event(), context.Value("d", 0.0)
    async with foreground.request():
        child = context.Process(target=_background_step, args=(folder, started, done_at))
        child.start()
        assert started.wait(60)
        time.sleep(0.5)  # the child is blocked in wait() by now (it cannot have returned: the lock is held)
        assert done_at.value == 0.0
        # A second request while background work waits: the shared lock is granted at once (never queued).
        with open(os.path.join(folder, LOCK), "a") as f:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        released = time.monotonic()
    child.join(60)
    assert child.exitcode == 0 and done_at.value >= released

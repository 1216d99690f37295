"""One run at a time on a home folder: an exclusive lock on `<home>/run.lock`, held for the whole run.

Two runs on one home would both redo all the work and write the same files at the same time. A `flock` is held
by an open file, so the kernel releases it when the holding process ends, however it ends: a run killed with
SIGKILL never leaves its home locked, and there is nothing stale to clean up.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from agenet_pipeline.core.home import Home


class HomeInUse(RuntimeError):
    """Another process holds the home's lock; the message names what it is running."""


@contextmanager
def holding(home: Home, holder: str) -> Iterator[None]:
    """Hold the home's lock while the block runs, with `holder` (the run's id and job) written in the lock file.

    Raises HomeInUse at once, naming the holder, when another process holds it: a second run never waits on a
    lock that may be held for hours. The holder is written in place, not atomically: a lock belongs to one
    file, and a renamed file would be a new one with no lock on it.
    """
    home.root.mkdir(parents=True, exist_ok=True)
    with open(home.lock_path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            held_by = file.read().strip() or "another run, just starting"
            raise HomeInUse(
                f"the home folder {home.root} is in use by {held_by} (lock {home.lock_path}): one run at a time "
                "may use a home; wait for that run to finish, or give this run another home (AGENET_HOME)"
            ) from None
        file.truncate(0)
        file.write(holder)
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)

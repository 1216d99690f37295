"""The home's lock between real processes: one holder at a time, named to whoever is refused, and free again when
the holder is killed (the kernel releases a dead process's lock)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agenet_pipeline.core.home import Home
from agenet_pipeline.core.lock import HomeInUse, holding

REPOSITORY = Path(__file__).resolve().parents[2]
HOLDER = textwrap.dedent("""
    import sys, time
    from agenet_pipeline.core.home import Home
    from agenet_pipeline.core.lock import holding

    with holding(Home.at(sys.argv[1]), "run 1234 of data_job"):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.fixture
def held(tmp_path):
    """A home whose lock another process holds, and that process."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    yield Home.at(tmp_path), holder
    holder.kill()
    holder.wait()


def test_a_second_holder_is_refused_at_once_naming_the_first(held):
    home, _ = held
    with pytest.raises(HomeInUse, match=f"{home.root} is in use by run 1234 of data_job"):
        with holding(home, "run 5678 of data_job"):
            pytest.fail("two holders at once")


def test_a_killed_holder_leaves_the_home_free(held):
    home, holder = held
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    with holding(home, "run 5678 of data_job"):
        assert home.lock_path.read_text() == "run 5678 of data_job"
    assert home.lock_path.read_text() == ""  # free again, naming nobody


def test_the_lock_is_free_after_the_block_even_when_it_raises(tmp_path):
    home = Home.at(tmp_path)
    with pytest.raises(ValueError), holding(home, "run 1"):
        raise ValueError("a failed run")
    with holding(home, "run 2"):
        assert home.lock_path.read_text() == "run 2"

"""The code a process runs, as a short fingerprint: every step of a run must run the code that launched the run,
also on another machine's worker."""

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def fingerprint(package: Path) -> str:
    """A short hash of the Python files under `package`: their paths and contents."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@cache
def code_version() -> str:
    """The fingerprint of the agenet_pipeline package this process imported."""
    return fingerprint(PACKAGE)

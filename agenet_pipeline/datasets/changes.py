"""Fingerprints of dataset folders, to notice new, changed or removed files without reading them.

A fingerprint hashes every file's (path relative to the root, size, modification time in nanoseconds), so it is
cheap (one `stat` per file) and changes when a file is added, removed, replaced or rewritten.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

FINGERPRINT_LENGTH = 16


def folder_fingerprint(root: Path) -> str:
    """A short hash of the files under `root`, or under the folder of `root` when it is a file (a labels table).
    Links to folders are not followed (a link loop stays finite)."""
    root = Path(root)
    if root.is_file():
        root = root.parent
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    digest = hashlib.sha256()
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:  # a dangling link still counts, by its own entry
                stat = path.lstat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def changed_datasets(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Datasets whose fingerprint differs from the one seen before, or that were not seen before."""
    return sorted(name for name, fingerprint in current.items() if previous.get(name) != fingerprint)

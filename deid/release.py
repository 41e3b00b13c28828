"""Releases: the manifest, earlier releases and their fingerprint index (the gate grows here).

Every published release is kept privately under ``<workspace>/releases/``:
its case rows count for k-anonymity in every later batch (they are public),
and the fingerprints of its images live in ``<workspace>/release-index`` so
a later contribution that copies one is caught.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from deid.demographics import read_release_csv
from deid.io import write_atomic
from deid.match import DiskMatchIndex, MatchIndex
from deid.workspace import CASES_FILE, Workspace

MANIFEST_FILE = "manifest.json"


def write_manifest(folder: Path) -> Path:
    """Write ``manifest.json`` with the SHA-256 and size of every file under ``folder``, sorted by path.

    Raises
    ------
    DeidError
        If the manifest cannot be written.
    """
    files = {}
    for path in sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE and not p.name.endswith(".partial")
    ):
        data = path.read_bytes()
        files[path.relative_to(folder).as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = folder / MANIFEST_FILE
    write_atomic(manifest, (json.dumps({"files": files}, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def earlier_release_rows(workspace: Workspace) -> list[dict[str, str]]:
    """Rows of every earlier release kept in ``<workspace>/releases/*/cases.csv`` (public, so they count for k)."""
    rows: list[dict[str, str]] = []
    for path in sorted(workspace.releases.glob(f"*/{CASES_FILE}")):
        rows.extend(read_release_csv(path))
    return rows


def open_release_index(workspace: Workspace) -> MatchIndex | None:
    """A read-only view of the fingerprints of every released image, or ``None`` before the first release."""
    if not (workspace.release_index / "meta.json").exists():
        return None
    return open_index(str(workspace.release_index))


@lru_cache(maxsize=4)
def open_index(directory: str) -> MatchIndex:
    """A read-only view of a persistent match index, opened once per process."""
    return DiskMatchIndex(directory, readonly=True)

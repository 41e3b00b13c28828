"""The private workspace: the one place that knows its folder layout.

::

    <root>/
      ledger.db        SQLite ledger (unless ``[ledger] url`` names a server)
      originals/       every input, content-addressed, kept as received (never published)
      staged/          the release candidate: images/, cases.csv, manifest.json
      held/            candidates waiting for a reviewer
      previews/        before/after pictures for reviewers
      release-index/   fingerprints of every image already released
      releases/        every published release, kept privately (they count for k-anonymity)

Nothing here is public. :mod:`deid.staging` is the only code that moves
candidate files between ``staged/images``, ``held/`` and nowhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from deid.config import Config
from deid.errors import LedgerError, WorkspaceBusy
from deid.ledger import Ledger, ledger_url

CASES_FILE = "cases.csv"
"""The case table's name, in an input folder and in ``staged/``."""
LOCK_FILE = ".deid-run.lock"
"""Held (``flock``) by the one run allowed in a workspace at a time; it names that run's process."""


@dataclass(frozen=True, slots=True)
class Workspace:
    """The private working folder of a run (see the module docstring for the layout)."""

    root: Path

    @property
    def originals(self) -> Path:
        """Content-addressed originals."""
        return self.root / "originals"

    @property
    def staged(self) -> Path:
        """Releasable candidates."""
        return self.root / "staged"

    @property
    def staged_images(self) -> Path:
        """Releasable images."""
        return self.staged / "images"

    @property
    def held(self) -> Path:
        """Candidates held for review."""
        return self.root / "held"

    @property
    def previews(self) -> Path:
        """Before/after previews for reviewers."""
        return self.root / "previews"

    @property
    def release_index(self) -> Path:
        """Fingerprints of every image already released (a :class:`~deid.match.DiskMatchIndex`)."""
        return self.root / "release-index"

    @property
    def releases(self) -> Path:
        """Published releases, kept privately: ``releases/<version>/``."""
        return self.root / "releases"

    def create(self) -> Workspace:
        """Make every folder; return self."""
        for folder in (self.originals, self.staged_images, self.held, self.previews):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def original_folder(self, sha256: str) -> Path:
        """The folder an original with this digest is kept in."""
        return self.originals / sha256[:2]

    def original_path(self, sha256: str) -> Path:
        """The kept original with this SHA-256 (``originals/<sha[:2]>/<sha><suffix>``).

        Raises
        ------
        LedgerError
            If no original with this digest is kept (the workspace was moved or pruned).
        """
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise LedgerError("not a SHA-256 digest", hint="originals are named by their lower-case hex digest")
        for path in sorted(self.original_folder(sha256).glob(f"{sha256}*")):
            if path.is_file():
                return path
        raise LedgerError(
            f"original {sha256[:12]}… is not in {self.originals}",
            hint="the workspace's originals/ folder is incomplete",
        )


def open_ledger(workspace: Workspace, config: Config) -> Ledger:
    """The ledger for a workspace: ``[ledger] url`` or SQLite in the workspace."""
    return Ledger(ledger_url(workspace.root, config.ledger.url))


@contextmanager
def lock_workspace(workspace: Workspace, *, purpose: str = "deid run") -> Iterator[None]:
    """Hold the workspace for one run: a second run on it fails at once instead of racing this one.

    The lock is an advisory ``flock`` on ``<root>/.deid-run.lock``, released by
    the kernel when the process ends however it ends (``kill -9`` included),
    so a crashed run never leaves the workspace locked. The file names the
    holder (process id, host, start time, purpose) for the refusal message.

    Raises
    ------
    WorkspaceBusy
        If another process holds the workspace; nothing has been changed.
    """
    workspace.root.mkdir(parents=True, exist_ok=True)
    path = workspace.root / LOCK_FILE
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkspaceBusy(
                f"workspace is in use by {_holder(handle)}",
                path=workspace.root,
                hint="wait for that run to finish, or use another --workspace",
            ) from None
        _write_holder(handle, purpose)
        yield
    finally:
        handle.close()  # closing the file releases the lock


def check_workspace_free(workspace: Workspace) -> None:
    """Fail fast, before any server or model starts, when another run holds the workspace.

    Raises
    ------
    WorkspaceBusy
        If another process holds the workspace.
    """
    if (workspace.root / LOCK_FILE).exists():
        with lock_workspace(workspace, purpose="check"):
            pass


def _write_holder(handle: IO[str], purpose: str) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(),
        "purpose": purpose,
    }
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(holder) + "\n")
    handle.flush()


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        holder = {}
    if not isinstance(holder, dict) or "pid" not in holder:
        return "another process"
    where = f"process {holder['pid']} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
    return f"{holder.get('purpose', 'a run')} ({where})"

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

from dataclasses import dataclass
from pathlib import Path

from deid.config import Config
from deid.errors import LedgerError
from deid.ledger import Ledger, ledger_url

CASES_FILE = "cases.csv"
"""The case table's name, in an input folder and in ``staged/``."""


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

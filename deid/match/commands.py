"""What ``deid index add``, ``deid index stats`` and ``deid match`` do, as library calls.

The CLI handlers in :mod:`deid.cli` only parse arguments and print the
records these functions yield, one per file, so a failing file is reported on
its own line and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deid.config import Config
from deid.errors import DeidError, InputError
from deid.io import EXTENSIONS, load_image
from deid.match.fingerprint import compute_fingerprints
from deid.match.index import DiskMatchIndex
from deid.match.verdict import MatchResult, match_image
from deid.match.verify_geometry import file_reference_loader
from deid.match.web import build_web_searches

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset().union(*EXTENSIONS.values())


def iter_image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given, and the image files under folders (recursively, in name order).

    A folder contributes only files whose suffix is an image format deid
    accepts; a file named explicitly is always yielded (and refused later if
    it is no image).
    """
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


@dataclass(frozen=True, slots=True)
class IndexAddResult:
    """What ``deid index add`` did with one file."""

    file: str
    status: str  # "added", "present" (already indexed: nothing done) or "error"
    error: DeidError | None = None

    def to_json(self) -> dict[str, object]:
        """``{"file", "status"}``, plus the error fields when it failed."""
        out: dict[str, object] = {"file": self.file, "status": self.status}
        if self.error is not None:
            out.update(self.error.to_json())
        return out


def add_files(paths: Iterable[Path], index: DiskMatchIndex, config: Config) -> Iterator[IndexAddResult]:
    """Fingerprint and index every image under ``paths``, by the path it was found under.

    Already indexed paths are skipped before decoding, so rerunning an
    interrupted run only does the rest. The caller commits (closes) the index.

    Raises
    ------
    LedgerError
        If the index cannot be written (the run stops; committed work is kept).
    """
    for file in iter_image_files(paths):
        reference = str(file)
        if reference in index:
            yield IndexAddResult(reference, "present")
            continue
        try:
            pixels = load_image(file, config.input).pixels
            prints = compute_fingerprints(pixels, config.match)
        except InputError as error:
            yield IndexAddResult(reference, "error", error)
            continue
        index.add(reference, prints)
        yield IndexAddResult(reference, "added")


@dataclass(frozen=True, slots=True)
class FileMatch:
    """``deid match`` for one file: its result, or the error that stopped it."""

    file: str
    result: MatchResult | None = None
    error: DeidError | None = None

    def to_json(self) -> dict[str, object]:
        """``{"file", "verdict", "matches": [...]}`` or ``{"file", "error", ...}``."""
        if self.result is None:
            assert self.error is not None  # one of the two is always set
            return {"file": self.file, **self.error.to_json()}
        return {
            "file": self.file,
            "verdict": str(self.result.verdict),
            "matches": [evidence.to_json() for evidence in self.result.matches],
        }


def match_files(files: Iterable[Path], index: DiskMatchIndex, config: Config) -> Iterator[FileMatch]:
    """Match each file against the index (and the web, if switched on), verifying from the indexed paths.

    Raises
    ------
    ConfigError
        If a web provider is switched on without its API key.
    """
    web = build_web_searches(config.match)
    load_reference = file_reference_loader(config.input)
    for file in files:
        try:
            pixels = load_image(file, config.input).pixels
            yield FileMatch(str(file), match_image(pixels, index, config.match, load_reference=load_reference, web=web))
        except DeidError as error:
            yield FileMatch(str(file), error=error)

"""Public-copy and near-duplicate matching.

The seam is :class:`MatchIndex`: ``add`` a reference's fingerprints under a
name, ``query`` with an image's fingerprints. Two back-ends implement it with
the same answers: :class:`MemoryMatchIndex` (a batch) and
:class:`DiskMatchIndex` (a persistent, memory-mapped index built for ten
million references). :func:`match_image` is the pipeline's one call per image;
:func:`cluster_duplicates` groups a batch's near-identical contributions.

Modules: :mod:`~deid.match.fingerprint` (hashes), :mod:`~deid.match.index`
(indexes), :mod:`~deid.match.verify` (ORB + RANSAC), :mod:`~deid.match.verdict`
(the decision), :mod:`~deid.match.duplicates` (clusters),
:mod:`~deid.match.web` (optional web reverse-image search).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from deid.match.fingerprint import Fingerprints, compute_fingerprints
from deid.types import Match


@runtime_checkable
class MatchIndex(Protocol):
    """Fingerprints of reference images: window pHashes searched by Hamming distance, ORB features by partners."""

    def add(self, reference: str, fingerprints: Fingerprints) -> bool:
        """Index ``fingerprints.windows`` under ``reference``; ``False`` if already indexed."""
        ...

    def query(self, fingerprints: Fingerprints, *, max_distance_bits: int) -> list[Match]:
        """Every reference within ``max_distance_bits`` of a query view, closest first; ``[]`` when none."""
        ...

    def similar(self, fingerprints: Fingerprints, *, shortlist: int, min_matches: int) -> list[Match]:
        """References sharing at least ``min_matches`` clear local-feature partners with the query, most first."""
        ...

    def __len__(self) -> int:
        """Number of references."""
        ...


# Re-exported below the protocol: these modules refer to MatchIndex for typing only.
from deid.match.duplicates import DuplicateCluster, cluster_duplicates  # noqa: E402
from deid.match.index import DiskMatchIndex, IndexStats, MemoryMatchIndex  # noqa: E402
from deid.match.verdict import MatchEvidence, MatchResult, MatchSource, Verdict, match_image  # noqa: E402
from deid.match.verify import ReferenceLoader, Verification, VerificationStatus, file_reference_loader, verify_copy  # noqa: E402
from deid.match.web import (  # noqa: E402
    CloudVisionWebDetection,
    ReverseImageSearch,
    WebMatch,
    WebMatchKind,
    build_web_searches,
)

__all__ = [
    "CloudVisionWebDetection",
    "DiskMatchIndex",
    "DuplicateCluster",
    "Fingerprints",
    "IndexStats",
    "MatchEvidence",
    "MatchIndex",
    "MatchResult",
    "MatchSource",
    "MemoryMatchIndex",
    "ReferenceLoader",
    "ReverseImageSearch",
    "Verdict",
    "Verification",
    "VerificationStatus",
    "WebMatch",
    "WebMatchKind",
    "build_web_searches",
    "cluster_duplicates",
    "compute_fingerprints",
    "file_reference_loader",
    "match_image",
    "verify_copy",
]

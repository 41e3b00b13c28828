"""Public-copy and near-duplicate matching.

The seam is :class:`MatchIndex`: ``add`` a reference's fingerprints under a
name, ``query`` with an image's fingerprints. Two back-ends implement it with
the same answers: :class:`MemoryMatchIndex` (a batch) and
:class:`DiskMatchIndex` (a persistent, memory-mapped index built for ten
million references). :func:`match_image` is the pipeline's one call per image;
:func:`cluster_duplicates` groups a batch's near-identical contributions.

Modules: :mod:`~deid.match.fingerprint` (hashes), :mod:`~deid.match.index`
(indexes), :mod:`~deid.match.verify_geometry` (ORB + RANSAC), :mod:`~deid.match.verdict`
(the decision), :mod:`~deid.match.duplicates` (clusters),
:mod:`~deid.match.web` (optional web reverse-image search).
"""

from __future__ import annotations

from deid.match.duplicates import DuplicateCluster, cluster_duplicates
from deid.match.fingerprint import Fingerprints, compute_fingerprints
from deid.match.index import DiskMatchIndex, IndexStats, MemoryMatchIndex
from deid.match.protocol import MatchIndex
from deid.match.verdict import MatchEvidence, MatchResult, MatchSource, Verdict, match_image
from deid.match.verify_geometry import (
    ReferenceLoader,
    Verification,
    VerificationStatus,
    file_reference_loader,
    verify_copy,
)
from deid.match.web import (
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

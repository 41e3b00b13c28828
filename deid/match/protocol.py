"""The matching seam: :class:`MatchIndex`, implemented by the memory and disk indexes.

It lives in its own module so that the modules that only type against it
(duplicates, verdict) import it directly instead of reaching back up into the
package ``__init__``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from deid.match.fingerprint import Fingerprints
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

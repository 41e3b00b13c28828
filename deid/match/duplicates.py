"""Clusters of near-identical contributions, within a batch and against earlier releases.

Contributors upload the same photo twice, or a resized, rotated or re-encoded
copy of it. :func:`cluster_duplicates` links two items whose fingerprints are
within ``match.max_distance_bits`` (under any flip or rotation), takes the
connected components, and keeps one item of each by ``match.keep_duplicate``:
``first`` (earliest in the batch's order) or ``largest`` (most pixels, then
earliest). The rest are excluded as duplicates. A cluster that matches an
image already released keeps none: the released image is the one kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from deid.config import MatchSettings
from deid.match.fingerprint import Fingerprints
from deid.match.index import MemoryMatchIndex
from deid.match.protocol import MatchIndex
from deid.types import Match


@dataclass(frozen=True, slots=True)
class DuplicateCluster:
    """Near-identical items: the one kept and the ones excluded as its duplicates.

    Attributes
    ----------
    kept
        The item kept (a batch key), or the released reference when ``released``.
    excluded
        Batch keys excluded as duplicates, in batch order.
    matches
        The links found: ``Match(reference=<other key>, ...)`` per excluded item.
    released
        True when ``kept`` is an image of an earlier release.
    """

    kept: str
    excluded: tuple[str, ...]
    matches: tuple[tuple[str, Match], ...]
    released: bool = False

    def to_json(self) -> dict[str, object]:
        """JSON form for the run summary and the ledger."""
        return {
            "kept": self.kept,
            "excluded": list(self.excluded),
            "released": self.released,
            "links": [
                {"item": item, "reference": m.reference, "distance": m.distance, "method": m.method}
                for item, m in self.matches
            ],
        }


def cluster_duplicates(
    items: Mapping[str, Fingerprints],
    settings: MatchSettings,
    *,
    release_index: MatchIndex | None = None,
) -> list[DuplicateCluster]:
    """Group near-identical items and choose which of each group to keep.

    Parameters
    ----------
    items
        Batch key (image id or file) to fingerprints, in batch order.
    settings
        The ``[match]`` configuration (``max_distance_bits``, ``keep_duplicate``).
    release_index
        Fingerprints of every earlier release; a cluster matching it is excluded whole.

    Returns
    -------
    list[DuplicateCluster]
        Only clusters with something excluded, in order of their first item.

    Raises
    ------
    InputError
        If a fingerprint is not a 64-bit hex hash.

    Examples
    --------
    >>> cluster_duplicates({}, settings)  # doctest: +SKIP
    []
    """
    keys = list(items)
    position = {key: i for i, key in enumerate(keys)}
    index = MemoryMatchIndex()
    for key in keys:
        index.add(key, items[key])
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links: dict[str, Match] = {}
    for key in keys:
        for match in index.query(items[key], max_distance_bits=settings.max_distance_bits):
            if match.reference == key:
                continue
            a, b = root(position[key]), root(position[match.reference])
            if a != b:
                parent[max(a, b)] = min(a, b)
            links.setdefault(key, match)
            links.setdefault(match.reference, Match(key, match.distance, match.method, match.verified))
    released: dict[int, Match] = {}
    if release_index is not None and len(release_index):
        for key in keys:
            found = release_index.query(items[key], max_distance_bits=settings.max_distance_bits)
            if found:
                released.setdefault(root(position[key]), found[0])
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(root(position[key]), []).append(key)
    clusters = []
    for group_root, members in groups.items():
        if group_root in released:
            prior = released[group_root]
            matches = tuple((m, links.get(m, prior)) for m in members)
            clusters.append(DuplicateCluster(prior.reference, tuple(members), matches, released=True))
            continue
        if len(members) < 2:
            continue
        if settings.keep_duplicate == "largest":
            kept = max(members, key=lambda m: (items[m].width * items[m].height, -position[m]))
        else:
            kept = members[0]
        excluded = tuple(m for m in members if m != kept)
        clusters.append(DuplicateCluster(kept, excluded, tuple((m, links[m]) for m in excluded)))
    clusters.sort(
        key=lambda c: position[c.excluded[0]] if c.released else min(position[c.kept], position[c.excluded[0]])
    )
    return clusters

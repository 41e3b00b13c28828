"""k-anonymity (and optional l-diversity) over a release, by local recoding.

The engine works on plain string tuples, one per row, over the configured
quasi-identifiers. It knows nothing about SCIN; :mod:`deid.demographics`
feeds it and writes its answers back into release rows.

Definitions
-----------
Equivalence class
    Rows whose quasi-identifier values are *exactly* equal as strings (a
    generalised ``AGE_18_TO_39`` and an exact ``AGE_18_TO_29`` are different
    classes), which is what an independent checker such as ``pycanon`` counts.
    A missing answer is a value of its own (``AGE_UNKNOWN``, blank), never
    dropped.
k achieved
    The size of the smallest class in the whole release: rows of earlier
    releases (fixed, public) and the new rows.
Hierarchy
    For one quasi-identifier, a list of levels; level ``i`` maps a value at
    level ``i - 1`` to a coarser one. A key is an exact value, ``"*"`` (any
    value) or ``"*,*"`` (any multi-select combination, i.e. a value holding a
    comma). Values without a matching key stay as they are. The value that
    ``"*"`` maps to on the last level is the attribute's *unknown* value
    (blanking). A quasi-identifier without a hierarchy is never changed.
Information loss (normalised certainty penalty, NCP)
    For a value ``v`` of attribute ``q``, ``NCP(v) = (|leaves(v)| - 1) /
    (|D_q| - 1)``, where ``D_q`` is the set of distinct exact, known values of
    ``q`` among the new rows and ``leaves(v)`` those of them that generalise
    to ``v``; the unknown value has NCP 1. The loss of a cell is the NCP
    *added* by anonymisation (``NCP(published) - NCP(original)``, so an answer
    that was missing anyway costs nothing), a suppressed row loses
    ``1 - NCP(original)`` per attribute, and the reported figure is the mean
    over all new rows and quasi-identifiers, in ``[0, 1]``.
Discernibility
    ``sum(|class|^2 for each class with new rows) + suppressed * N``, where
    ``N`` is the number of rows before suppression (earlier ones included);
    reported for comparison with the literature.

Algorithm
---------
Every combination of levels (one per attribute) is a node of the
generalisation lattice; nodes are visited in order of their expected loss
(frequency-weighted NCP over the new rows), cheapest first, starting with the
unchanged data. At each node, every row not yet placed is recoded to the
node's levels, and each resulting class that, counted together with the rows
already placed in it (earlier releases included), reaches ``k`` rows (and
``l`` distinct sensitive values) is placed there. Placed rows never move, so
classes only grow and the guarantee holds at the end. What is left after the
top node (every hierarchy blanked) is suppressed. Each row thus gets the
cheapest recoding that puts it in a class of ``k``: generalising before
blanking, blanking before suppressing. The work is one ``numpy.unique`` over
the rows still unplaced per node (most are placed at the first node), so
100,000 rows take about a second (``benchmarks/anonymity.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from deid.errors import ConfigError

ANY = "*"
ANY_COMBINATION = "*,*"
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Generalisation levels of one quasi-identifier.

    Parameters
    ----------
    levels
        ``levels[i]`` maps a value at level ``i`` to its value at level
        ``i + 1``; keys are exact values, ``"*"`` or ``"*,*"``.

    Examples
    --------
    >>> fst = Hierarchy(({"FST1": "FST1_OR_2", "FST2": "FST1_OR_2"}, {"*": ""}))
    >>> [fst.generalise("FST2", level) for level in range(3)]
    ['FST2', 'FST1_OR_2', '']
    >>> fst.unknown
    ''
    """

    levels: tuple[Mapping[str, str], ...] = ()

    @property
    def depth(self) -> int:
        """Number of generalisation steps above the exact value."""
        return len(self.levels)

    @property
    def unknown(self) -> str | None:
        """The blanked value (what ``"*"`` maps to on the last level), if any."""
        return self.levels[-1].get(ANY) if self.levels else None

    def generalise(self, value: str, level: int) -> str:
        """The value at ``level`` (0 is the value itself)."""
        for mapping in self.levels[:level]:
            if value in mapping:
                value = mapping[value]
            elif ANY_COMBINATION in mapping and "," in value:
                value = mapping[ANY_COMBINATION]
            elif ANY in mapping:
                value = mapping[ANY]
        return value


@dataclass(frozen=True, slots=True)
class AnonymityOutcome:
    """What :func:`enforce_k_anonymity` decided for the new rows.

    ``published[i]`` is the recoded tuple of new row ``i``, or ``None`` when
    the row is suppressed; ``levels[i]`` the lattice node it was placed at.
    """

    published: list[tuple[str, ...] | None]
    levels: list[tuple[int, ...] | None]
    k_target: int
    k_achieved: int
    k_achieved_new_rows: int
    l_target: int
    l_achieved: int | None
    cells_generalised: dict[str, int]
    cells_blanked: dict[str, int]
    suppressed: int
    information_loss: float
    discernibility: int
    classes: int
    earlier_classes_below_k: int
    earlier_rows_below_k: int
    nodes_used: dict[str, int] = field(default_factory=dict)

    @property
    def suppressed_indices(self) -> list[int]:
        """Indices of suppressed new rows."""
        return [index for index, row in enumerate(self.published) if row is None]


class _Vocabulary:
    """Strings of one attribute to dense integer codes (shared by every level)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []

    def code(self, value: str) -> int:
        found = self.codes.get(value)
        if found is None:
            found = self.codes[value] = len(self.values)
            self.values.append(value)
        return found


def enforce_k_anonymity(
    new_rows: Sequence[Sequence[str]],
    *,
    quasi_identifiers: Sequence[str],
    hierarchies: Mapping[str, Hierarchy],
    k: int,
    fixed_rows: Sequence[Sequence[str]] = (),
    new_sensitive: Sequence[str] | None = None,
    fixed_sensitive: Sequence[str] | None = None,
    l_diversity: int = 1,
) -> AnonymityOutcome:
    """Recode or suppress new rows so every class of the release has ``k`` rows.

    Parameters
    ----------
    new_rows
        One tuple of quasi-identifier values per new row, in the order of
        ``quasi_identifiers``. Missing answers are ordinary values.
    quasi_identifiers
        Attribute names, used to look up ``hierarchies`` and in the counts.
    hierarchies
        Generalisation levels per attribute; an attribute without one is never changed.
    k
        Minimum class size.
    fixed_rows
        Rows of earlier releases: public and unchangeable, but counted.
    new_sensitive, fixed_sensitive
        The sensitive attribute per row, for l-diversity (both or neither).
    l_diversity
        Minimum number of distinct sensitive values per class (1 = off).

    Returns
    -------
    AnonymityOutcome
        Recoded tuples, suppressed rows and the figures for the report.

    Raises
    ------
    ConfigError
        If ``k`` or ``l_diversity`` is below 1, a row has the wrong width,
        sensitive values are missing for l-diversity, or the attributes have
        too many distinct values to encode.

    Examples
    --------
    >>> ages = Hierarchy(({"40s": "40-59", "50s": "40-59"}, {"*": "?"}))
    >>> rows = [("30s",)] * 3 + [("40s",)] * 2 + [("50s",), ("90s",)]
    >>> outcome = enforce_k_anonymity(rows, quasi_identifiers=["age"], hierarchies={"age": ages}, k=3)
    >>> outcome.published
    [('30s',), ('30s',), ('30s',), ('40-59',), ('40-59',), ('40-59',), None]
    >>> outcome.k_achieved, outcome.suppressed
    (3, 1)
    """
    if k < 1 or l_diversity < 1:
        raise ConfigError("k and l must be at least 1", hint="change demographics.k / demographics.l in deid.toml")
    width = len(quasi_identifiers)
    for rows, name in ((new_rows, "new"), (fixed_rows, "earlier")):
        for row in rows:
            if len(row) != width:
                raise ConfigError(f"an {name} row has {len(row)} quasi-identifier values, expected {width}")
    use_l = l_diversity > 1
    if use_l and (new_sensitive is None or (fixed_sensitive is None and fixed_rows)):
        raise ConfigError(
            "l-diversity needs the sensitive value of every row", hint="set demographics.sensitive_column"
        )

    count_new = len(new_rows)
    tiers = [hierarchies.get(name, Hierarchy()) for name in quasi_identifiers]
    vocabularies = [_Vocabulary() for _ in quasi_identifiers]
    # codes[q][level]: code of every new row's value of attribute q at that level.
    codes: list[list[IntArray]] = []
    ncp: list[npt.NDArray[np.float64]] = []
    for q, (tier, vocabulary) in enumerate(zip(tiers, vocabularies, strict=True)):
        column = [row[q] for row in new_rows]
        distinct = list(dict.fromkeys(column))
        index_of = {value: position for position, value in enumerate(distinct)}
        inverse = np.fromiter((index_of[value] for value in column), dtype=np.int64, count=count_new)
        per_level = []
        chains = [[tier.generalise(value, level) for level in range(tier.depth + 1)] for value in distinct]
        for level in range(tier.depth + 1):
            level_codes = np.array([vocabulary.code(chain[level]) for chain in chains], dtype=np.int64)
            per_level.append(level_codes[inverse] if count_new else np.zeros(0, dtype=np.int64))
        codes.append(per_level)
        ncp.append(_ncp_table(chains, vocabulary, tier.unknown))
    fixed_codes = [np.array([vocabularies[q].code(row[q]) for row in fixed_rows], dtype=np.int64) for q in range(width)]
    sizes = [max(1, len(vocabulary.values)) for vocabulary in vocabularies]
    if float(np.prod(np.array(sizes, dtype=np.float64))) >= 2.0**62:
        raise ConfigError("too many distinct quasi-identifier values to encode", hint="generalise before anonymising")
    multipliers = np.cumprod([1, *sizes[:-1]]).astype(np.int64)

    sensitive_vocabulary = _Vocabulary()
    new_sensitive_codes = np.array([sensitive_vocabulary.code(v) for v in (new_sensitive or [])], dtype=np.int64)
    fixed_sensitive_codes = [sensitive_vocabulary.code(v) for v in (fixed_sensitive or [])]

    placed_count: dict[int, int] = {}
    placed_sensitive: dict[int, set[int]] = {}
    fixed_keys = np.zeros(len(fixed_rows), dtype=np.int64)
    for q in range(width):
        fixed_keys += fixed_codes[q] * multipliers[q]
    for position, key in enumerate(fixed_keys.tolist()):
        placed_count[key] = placed_count.get(key, 0) + 1
        if use_l:
            placed_sensitive.setdefault(key, set()).add(fixed_sensitive_codes[position])
    fixed_only = dict(placed_count)

    base_ncp = np.zeros(count_new, dtype=np.float64)
    for q in range(width):
        base_ncp += ncp[q][codes[q][0]] if count_new else 0.0
    nodes = _nodes_by_expected_loss(codes, ncp, [tier.depth for tier in tiers])

    node_of = np.full(count_new, -1, dtype=np.int64)
    row_key = np.zeros(count_new, dtype=np.int64)
    unplaced = np.arange(count_new, dtype=np.int64)
    for node_index, node in enumerate(nodes):
        if unplaced.size == 0:
            break
        keys = np.zeros(unplaced.size, dtype=np.int64)
        for q, level in enumerate(node):
            keys += codes[q][level][unplaced] * multipliers[q]
        unique_keys, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        already = np.fromiter(
            (placed_count.get(key, 0) for key in unique_keys.tolist()), dtype=np.int64, count=unique_keys.size
        )
        accept = counts + already >= k
        if use_l and accept.any():
            accept &= _diverse_enough(
                unique_keys, inverse, new_sensitive_codes[unplaced], placed_sensitive, accept, l_diversity
            )
        if not accept.any():
            continue
        for key, count in zip(unique_keys[accept].tolist(), counts[accept].tolist(), strict=True):
            placed_count[key] = placed_count.get(key, 0) + count
        chosen = accept[inverse]
        rows = unplaced[chosen]
        node_of[rows] = node_index
        row_key[rows] = keys[chosen]
        if use_l:
            for key, sensitive in zip(keys[chosen].tolist(), new_sensitive_codes[rows].tolist(), strict=True):
                placed_sensitive.setdefault(key, set()).add(sensitive)
        unplaced = unplaced[~chosen]

    return _outcome(
        quasi_identifiers=quasi_identifiers,
        tiers=tiers,
        vocabularies=vocabularies,
        codes=codes,
        ncp=ncp,
        base_ncp=base_ncp,
        nodes=nodes,
        node_of=node_of,
        row_key=row_key,
        placed_count=placed_count,
        placed_sensitive=placed_sensitive if use_l else None,
        fixed_only=fixed_only,
        k=k,
        l_diversity=l_diversity,
        total_rows=len(fixed_rows) + int((node_of >= 0).sum()),
    )


def _ncp_table(chains: list[list[str]], vocabulary: _Vocabulary, unknown: str | None) -> npt.NDArray[np.float64]:
    """NCP of every code of one attribute, from the chains of its exact values."""
    leaves = [chain for chain in chains if chain[0] != unknown]
    covered: dict[str, set[str]] = {}
    for chain in leaves:
        for value in chain:
            covered.setdefault(value, set()).add(chain[0])
    table = np.zeros(max(1, len(vocabulary.values)), dtype=np.float64)
    denominator = max(1, len(leaves) - 1)
    for value, code in vocabulary.codes.items():
        if unknown is not None and value == unknown:
            table[code] = 1.0
        elif value in covered:
            table[code] = (len(covered[value]) - 1) / denominator if len(leaves) > 1 else 0.0
    return table


def _nodes_by_expected_loss(
    codes: list[list[IntArray]], ncp: list[npt.NDArray[np.float64]], depths: list[int]
) -> list[tuple[int, ...]]:
    """Every lattice node, cheapest expected loss first (ties: fewer steps, then lexicographic)."""
    expected = []
    for q, per_level in enumerate(codes):
        base = ncp[q][per_level[0]]
        expected.append([float((ncp[q][level_codes] - base).mean()) if base.size else 0.0 for level_codes in per_level])
    nodes = list(itertools.product(*(range(depth + 1) for depth in depths)))
    return sorted(
        nodes, key=lambda node: (round(sum(expected[q][level] for q, level in enumerate(node)), 12), sum(node), node)
    )


def _diverse_enough(
    unique_keys: IntArray,
    inverse: IntArray,
    sensitive: IntArray,
    placed_sensitive: Mapping[int, set[int]],
    accept: npt.NDArray[np.bool_],
    l_diversity: int,
) -> npt.NDArray[np.bool_]:
    """Which candidate classes would hold ``l`` distinct sensitive values once placed."""
    pairs = np.unique(np.stack([inverse.astype(np.int64), sensitive]), axis=1)
    result = np.zeros(unique_keys.size, dtype=bool)
    candidates: dict[int, set[int]] = {}
    for group, value in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        if accept[group]:
            candidates.setdefault(group, set()).add(value)
    for group, values in candidates.items():
        merged = values | placed_sensitive.get(int(unique_keys[group]), set())
        result[group] = len(merged) >= l_diversity
    return result


def _outcome(
    *,
    quasi_identifiers: Sequence[str],
    tiers: list[Hierarchy],
    vocabularies: list[_Vocabulary],
    codes: list[list[IntArray]],
    ncp: list[npt.NDArray[np.float64]],
    base_ncp: npt.NDArray[np.float64],
    nodes: list[tuple[int, ...]],
    node_of: IntArray,
    row_key: IntArray,
    placed_count: Mapping[int, int],
    placed_sensitive: Mapping[int, set[int]] | None,
    fixed_only: Mapping[int, int],
    k: int,
    l_diversity: int,
    total_rows: int,
) -> AnonymityOutcome:
    """Assemble the published tuples and the report figures."""
    count_new = node_of.size
    width = len(quasi_identifiers)
    placed = node_of >= 0
    published: list[tuple[str, ...] | None] = [None] * count_new
    levels: list[tuple[int, ...] | None] = [None] * count_new
    generalised = dict.fromkeys(quasi_identifiers, 0)
    blanked = dict.fromkeys(quasi_identifiers, 0)
    loss = np.where(placed, 0.0, width - base_ncp)
    chosen_codes = np.zeros((width, count_new), dtype=np.int64)
    node_array = np.array(nodes, dtype=np.int64).reshape(len(nodes), width)
    safe_node = np.where(placed, node_of, 0)
    for q, name in enumerate(quasi_identifiers):
        stacked = np.stack(codes[q]) if count_new else np.zeros((1, 0), dtype=np.int64)
        chosen_codes[q] = stacked[node_array[safe_node, q], np.arange(count_new)] if count_new else 0
        changed = placed & (chosen_codes[q] != codes[q][0])
        unknown = tiers[q].unknown
        unknown_code = vocabularies[q].codes.get(unknown, -1) if unknown is not None else -1
        is_blank = chosen_codes[q] == unknown_code
        blanked[name] = int((changed & is_blank).sum())
        generalised[name] = int((changed & ~is_blank).sum())
        loss += np.where(placed, ncp[q][chosen_codes[q]] - ncp[q][codes[q][0]], 0.0)
    values = [vocabulary.values for vocabulary in vocabularies]
    chosen_rows = chosen_codes.T.tolist()
    for index in np.flatnonzero(placed).tolist():
        published[index] = tuple(values[q][code] for q, code in enumerate(chosen_rows[index]))
        levels[index] = nodes[int(node_of[index])]
    nodes_used: dict[str, int] = {}
    for node_index, count in zip(*np.unique(node_of[placed], return_counts=True), strict=True):
        label = ",".join(
            f"{name}={level}" for name, level in zip(quasi_identifiers, nodes[int(node_index)], strict=True) if level
        )
        nodes_used[label or "unchanged"] = int(count)

    new_keys = set(row_key[placed].tolist())
    sizes_all = list(placed_count.values())
    k_achieved = min(sizes_all) if sizes_all else 0
    k_new = min((placed_count[key] for key in new_keys), default=0)
    below = [size for key, size in fixed_only.items() if key not in new_keys and size < k]
    suppressed = int((~placed).sum())
    l_achieved = None
    if placed_sensitive is not None:
        l_achieved = min((len(values_) for values_ in placed_sensitive.values()), default=0)
    new_sizes = np.array([placed_count[key] for key in new_keys], dtype=np.int64)
    discernibility = int((new_sizes**2).sum()) + suppressed * (total_rows + suppressed)
    return AnonymityOutcome(
        published=published,
        levels=levels,
        k_target=k,
        k_achieved=k_achieved,
        k_achieved_new_rows=k_new,
        l_target=l_diversity,
        l_achieved=l_achieved,
        cells_generalised=generalised,
        cells_blanked=blanked,
        suppressed=suppressed,
        information_loss=float(loss.sum() / (count_new * width)) if count_new and width else 0.0,
        discernibility=discernibility,
        classes=len(placed_count),
        earlier_classes_below_k=len(below),
        earlier_rows_below_k=int(sum(below)),
        nodes_used=nodes_used,
    )

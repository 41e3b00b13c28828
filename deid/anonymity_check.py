"""An independent count of equivalence classes in a published case table (the gate's k check).

Deliberately shares no code with :mod:`deid.anonymity` (the enforcer): it
reads only released CSV rows and the shipped schema, so a bug in the
enforcer cannot hide itself from the gate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from deid.scin import load_schema

RACE = "race_ethnicity"


def release_classes(rows: Sequence[Mapping[str, str]], quasi_identifiers: Sequence[str]) -> Counter[tuple[str, ...]]:
    """Equivalence classes of released rows, computed from the CSV cells alone.

    A quasi-identifier's key is its column and every declared column that
    generalises it; ``race_ethnicity`` is the tuple of every race column. A
    blank is a value of its own.

    Examples
    --------
    >>> rows = [{"year": "2024", "age_group": ""}, {"year": "2024", "age_group": "AGE_30_TO_39"}]
    >>> sorted(release_classes(rows, ["year"]).values())
    [2]
    """
    schema = load_schema()
    extras = {spec.generalises: spec.name for spec in schema.extra_columns if spec.generalises}
    race = [spec.name for spec in schema.cases_columns if spec.name.startswith("race_ethnicity_")]
    columns: list[str] = []
    for name in quasi_identifiers:
        columns.extend(race if name == RACE else [name, *([extras[name]] if name in extras else [])])
    return Counter(tuple(row.get(column, "") for column in columns) for row in rows)

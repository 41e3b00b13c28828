"""SCIN's release schema, as shipped in ``deid/data/scin_schema.json``.

The file (versioned, copied into every release as ``schema.json``) lists
SCIN's ``scin_cases.csv`` and ``scin_labels.csv`` columns in their published
order with the vocabulary of each, then the columns deid adds. An added
column that stands for a quasi-identifier (a coarser age band k-anonymity
needed) is flagged as one, so the gate counts it for k.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from deid.errors import ConfigError

SCHEMA_FILE = "scin_schema.json"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One release column: its kind (``enum``, ``bool``, ``int64``, ...) and allowed values.

    ``generalised_column`` names the deid column that carries a coarser value
    of this one; ``generalises`` is the reverse link.
    """

    name: str
    kind: str
    values: tuple[str, ...] = ()
    required: bool = False
    quasi_identifier: bool = False
    generalised_column: str = ""
    generalises: str = ""


@dataclass(frozen=True, slots=True)
class ScinSchema:
    """The columns of a SCIN-layout release and where its files live."""

    version: str
    text: str
    cases_file: str
    labels_file: str
    images_dir: str
    cases_columns: tuple[ColumnSpec, ...]
    extra_columns: tuple[ColumnSpec, ...]
    optional_columns: tuple[ColumnSpec, ...]
    labels_columns: tuple[ColumnSpec, ...]

    def case_columns(self, *, free_text: bool = False) -> tuple[str, ...]:
        """The exact header of ``scin_cases.csv``: SCIN's columns, then deid's."""
        optional = tuple(c.name for c in self.optional_columns) if free_text else ()
        return (*(c.name for c in self.cases_columns), *(c.name for c in self.extra_columns), *optional)

    def column(self, name: str) -> ColumnSpec:
        """The spec of a cases column by name.

        Raises
        ------
        KeyError
            If no cases column has that name.
        """
        for spec in (*self.cases_columns, *self.extra_columns, *self.optional_columns):
            if spec.name == name:
                return spec
        raise KeyError(name)

    def is_in_vocabulary(self, name: str, value: str) -> bool:
        """True when ``value`` may appear in column ``name`` (blank always may, for optional columns)."""
        spec = self.column(name)
        if not value:
            return not spec.required
        return not spec.values or value in spec.values

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The exact header of ``scin_labels.csv``."""
        return tuple(c.name for c in self.labels_columns)


def _spec(data: dict[str, object]) -> ColumnSpec:
    values = data.get("values", [])
    return ColumnSpec(
        name=str(data["name"]),
        kind=str(data["kind"]),
        values=tuple(str(v) for v in values) if isinstance(values, list) else (),
        required=bool(data.get("required", False)),
        quasi_identifier=bool(data.get("quasi_identifier", False)),
        generalised_column=str(data.get("generalised_column", "")),
        generalises=str(data.get("generalises", "")),
    )


@lru_cache(maxsize=1)
def load_schema() -> ScinSchema:
    """The shipped SCIN schema.

    Raises
    ------
    ConfigError
        If the shipped file is missing or malformed (a broken install).

    Examples
    --------
    >>> load_schema().case_columns()[:3]
    ('case_id', 'source', 'release')
    """
    try:
        text = resources.files("deid.data").joinpath(SCHEMA_FILE).read_text("utf-8")
        data = json.loads(text)
        return ScinSchema(
            version=str(data["version"]),
            text=text,
            cases_file=str(data["cases_file"]),
            labels_file=str(data["labels_file"]),
            images_dir=str(data["images_dir"]),
            cases_columns=tuple(_spec(c) for c in data["cases_columns"]),
            extra_columns=tuple(_spec(c) for c in data["extra_columns"]),
            optional_columns=tuple(_spec(c) for c in data["optional_columns"]),
            labels_columns=tuple(_spec(c) for c in data["labels_columns"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"cannot load the shipped SCIN schema: {error}", hint="reinstall deid") from error

"""Typed, immutable objects that a loaded contract is made of (no I/O, no validation here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from enum import StrEnum
from typing import Any, Mapping

__all__ = [
    "CANONICAL_DTYPES",
    "CSV_NULL_TOKENS",
    "Contract",
    "Dataset",
    "Destination",
    "DType",
    "FEATURE_CONSTRAINTS",
    "Feature",
    "QualityConfig",
    "Rule",
    "TIERS",
    "Tier",
    "Transformation",
    "parse_dtype",
]


class Tier(StrEnum):
    """Where a scored record goes. A ``str``: ``Tier.GOLD == "gold"``, and it formats and encodes
    (json, orjson) as its value."""

    GOLD = "gold"
    SILVER = "silver"
    BRONZE = "bronze"
    #: Only ever reached through a critical failure.
    REJECTED = "rejected"


#: Tier names, best first.
TIERS: tuple[Tier, ...] = tuple(Tier)

#: Tokens that count as missing in CSV sources unless the source overrides ``null_values``.
CSV_NULL_TOKENS: frozenset[str] = frozenset({"NA", "N/A", "NULL", "null"})

#: Contract spellings -> canonical dtype names.
_ALIASES: dict[str, str] = {
    "int": "int",
    "integer": "int",
    "bigint": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "text": "string",
    "bool": "bool",
    "boolean": "bool",
    "date": "date",
    "datetime": "timestamp",
    "timestamp": "timestamp",
}
CANONICAL_DTYPES: tuple[str, ...] = (
    "int", "bigint", "float", "double", "string", "bool", "date", "timestamp", "decimal",
)
_DECIMAL = re.compile(r"^decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


@dataclass(frozen=True)
class DType:
    """A canonical dtype. ``name`` is one of CANONICAL_DTYPES; decimals carry precision/scale."""

    name: str
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.name == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.name

    @property
    def is_numeric(self) -> bool:
        return self.name in ("int", "bigint", "float", "double", "decimal")

    @property
    def is_temporal(self) -> bool:
        return self.name in ("date", "timestamp")


def parse_dtype(text: str) -> DType:
    """Parse a contract dtype spelling (case-insensitive). Raises ValueError if unknown."""
    if not isinstance(text, str):
        raise ValueError(f"dtype must be a string, got {type(text).__name__}")
    spelled = text.strip().lower()
    if spelled in _ALIASES:
        return DType(_ALIASES[spelled])
    m = _DECIMAL.match(spelled)
    if m:
        precision, scale = int(m.group(1)), int(m.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal({precision},{scale}): need 1 <= precision <= 38 and scale <= precision")
        return DType("decimal", precision, scale)
    known = ", ".join([*_ALIASES, "decimal(p,s)"])
    raise ValueError(f"unknown dtype {text!r} (known: {known})")


@dataclass(frozen=True)
class Feature:
    """One declared field and its constraints. Constraint values are as written in the contract
    (``min``/``max`` are numbers, or ISO strings for date/timestamp)."""

    name: str
    dtype: DType
    required: bool = False
    min: Any = None
    max: Any = None
    pattern: str | None = None
    allowed: tuple[Any, ...] | None = None
    max_length: int | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form, as stored in the schema registry (None-valued keys left out)."""
        out: dict[str, Any] = {"name": self.name, "dtype": str(self.dtype), "required": self.required}
        for key in FEATURE_CONSTRAINTS:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Feature":
        """Inverse of :meth:`to_dict` (trusted input: the registry's own entries)."""
        constraints: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                       for key in FEATURE_CONSTRAINTS if (value := data.get(key)) is not None}
        return cls(name=data["name"], dtype=parse_dtype(data["dtype"]), required=bool(data.get("required", False)),
                   **constraints)


#: The :class:`Feature` attributes that hold constraints (all but name, dtype, required and
#: description), in declaration order; ``atlas_stream.checks.PLAN`` has one check for each.
FEATURE_CONSTRAINTS: tuple[str, ...] = tuple(
    f.name for f in fields(Feature) if f.name not in ("name", "dtype", "required", "description"))


@dataclass(frozen=True)
class Rule:
    """A named boolean expression of the rule language (see atlas_stream.expr)."""

    name: str
    expr: str


@dataclass(frozen=True)
class QualityConfig:
    """Per-dataset quality settings. ``tiers`` maps gold/silver to their minimum score."""

    tiers: Mapping[str, float] = field(default_factory=lambda: {"gold": 1.0, "silver": 0.8})
    rules: tuple[Rule, ...] = ()
    event_time: str | None = None
    freshness: timedelta | None = None


@dataclass(frozen=True)
class Transformation:
    """One step of a dataset's ``transformations``, normalised.

    ``op`` is rename | cast | drop | fill_null | trim | lower | upper | derive.
    ``fields`` lists the fields it acts on (for rename: the old names, in ``mapping`` order).
    ``params`` holds the rest: rename ``mapping`` {old: new}; cast ``dtype`` (DType);
    fill_null ``value``; derive ``name``, ``expr`` (str), ``dtype`` (DType) and ``feature``
    (the Feature it adds to the schema).
    """

    op: str
    fields: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Destination:
    """Where a dataset lands. ``path`` is relative to the lake root; ``features`` an optional
    projection (column names, all in the dataset schema)."""

    path: str
    features: tuple[str, ...] | None = None
    parquet_tiers: tuple[str, ...] = TIERS
    elasticsearch_tiers: tuple[str, ...] = ("gold", "silver")
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """One entry of ``dataset_config``.

    ``source_features`` are the fields as the source produces them; ``schema`` is what remains
    after the transformations are applied to that feature list (renames, casts, drops, derived
    fields): records are scored against it and it is what the schema registry versions.
    """

    group: str
    name: str
    path: str
    source_features: tuple[Feature, ...]
    schema: tuple[Feature, ...]
    transformations: tuple[Transformation, ...]
    quality: QualityConfig
    destination: Destination
    key: tuple[str, ...] = ()
    null_values: frozenset[str] = frozenset()
    #: Declared compatibility mode; None leaves the registry's mode for the subject as it is
    #: (BACKWARD for a new subject, or whatever an operator set through the registry API).
    compatibility: str | None = None
    format: str | None = None
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """Schema-registry subject: ``<group>.<dataset>``."""
        return f"{self.group}.{self.name}"


@dataclass(frozen=True)
class Contract:
    """One metadata/*.json file. ``source_config`` has ``${VAR}`` placeholders filled in, so it
    may hold secrets: its repr never shows them."""

    group: str
    source_type: str
    source_config: Mapping[str, Any] = field(repr=False)
    datasets: tuple[Dataset, ...]
    file: str = ""

    def dataset(self, name: str) -> Dataset:
        for ds in self.datasets:
            if ds.name == name:
                return ds
        raise KeyError(f"contract {self.group!r} has no dataset {name!r}")

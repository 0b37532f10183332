"""metadata/*.json contracts -> validated, typed Contract objects (errors name the file and JSON path)."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

import isodate

from .checks import CONSTRAINT_KEYS
from .contract_schema import NAME_PATTERN, SCHEMA_FILE, SCHEMA_PATH, did_you_mean, json_path, schema_problems
from .dtypes import coerce, parse_bound
from .errors import ConfigError, ContractError, ExprError
from .expr import compile_expr
from .model import (
    CSV_NULL_TOKENS,
    TIERS,
    Contract,
    Dataset,
    Destination,
    Feature,
    QualityConfig,
    Rule,
    Transformation,
    parse_dtype,
)
from .placeholders import Filled, Loc, fill_placeholders
from .schema_registry import MODES, normalise_mode
from .transform import TransformSchemaError, transform_schema

__all__ = ["SCHEMA_FILE", "SCHEMA_PATH", "check_contracts", "contract_for_group", "json_path", "load_contract",
           "load_contracts"]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "jsonl", "json", "parquet")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
_DEFAULT_TIERS = {"gold": 1.0, "silver": 0.8}
_BOUND_EXAMPLES = {"date": "an ISO-8601 date such as 2024-01-31",
                   "timestamp": "an ISO-8601 timestamp such as 2024-01-31T12:00:00Z"}
#: Secrets shorter than this are not scrubbed from messages (it would garble them, and a
#: two-character value is no secret).
_MIN_SCRUB = 4

_FEATURE_KEYS = ("name", "dtype", "required", "nullable", *CONSTRAINT_KEYS, "description")
_DATASET_KEYS = ("source", "quality", "compatibility", "transformations", "destination")
_CONSTRAINT_KEYS = ("required", *CONSTRAINT_KEYS, "description")
_TARGETS = ("field", "fields")
#: Keys each transformation type takes, besides ``type``/``op`` and ``description``.
_OP_KEYS: dict[str, tuple[str, ...]] = {
    "rename": ("from", "to", "mapping"),
    "cast": (*_TARGETS, "dtype"),
    "drop": _TARGETS,
    "fill_null": (*_TARGETS, "value"),
    "trim": _TARGETS,
    "lower": _TARGETS,
    "upper": _TARGETS,
    "derive": ("name", "expr", "dtype", *_CONSTRAINT_KEYS),
}


def load_contract(path: str | Path, env: Mapping[str, str] | None = None) -> Contract:
    """Load and validate one contract. Raises the first ContractError (others are added as notes)."""
    contract, errors, _ = _check_file(Path(path), os.environ if env is None else env)
    if errors:
        _raise(errors)
    assert contract is not None
    return contract


def load_contracts(directory: str | Path, env: Mapping[str, str] | None = None) -> list[Contract]:
    """Load every ``*.json`` contract of ``directory`` (but the schema), sorted by file name.
    Raises the first ContractError found; the others are added to it as notes."""
    contracts, errors = _check_directory(Path(directory), os.environ if env is None else env)
    if errors:
        _raise(errors)
    return contracts


def contract_for_group(directory: str | Path, group: str) -> Contract:
    """The contract whose ``ocs_group_name`` is ``group`` (ConfigError naming the known ones)."""
    contracts = load_contracts(directory)
    for contract in contracts:
        if contract.group == group:
            return contract
    known = ", ".join(sorted(c.group for c in contracts)) or "none"
    raise ConfigError(f"no contract with ocs_group_name {group!r} in {directory} (known: {known})")


def check_contracts(directory: str | Path, env: Mapping[str, str] | None = None) -> list[ContractError]:
    """Every problem of every contract in ``directory`` (empty if all load)."""
    return _check_directory(Path(directory), os.environ if env is None else env)[1]


def _raise(errors: list[ContractError]) -> None:
    first = errors[0]
    for other in errors[1:]:
        first.add_note(str(other))
    raise first


def _check_directory(directory: Path, env: Mapping[str, str]) -> tuple[list[Contract], list[ContractError]]:
    hint = (f"put one <ocs_group_name>.json contract per ingestion group there (see {SCHEMA_FILE} "
            "and the ecommerce_*.json examples), or point ATLAS_METADATA_DIR at the folder holding them")
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        return [], [ContractError(str(directory), "$", f"contracts directory {what}: {hint}")]
    files = sorted(p for p in directory.glob("*.json") if p.name != SCHEMA_FILE and p.is_file())
    if not files:
        return [], [ContractError(str(directory), "$", f"no contracts found (no *.json file): {hint}")]
    contracts: list[Contract] = []
    errors: list[ContractError] = []
    owners: dict[str, Path] = {}
    for file in files:
        contract, found, group = _check_file(file, env)
        errors += found
        if contract is not None:
            contracts.append(contract)
        if group is None:
            continue
        if group in owners:
            errors.append(ContractError(str(file), "$.ocs_group_name",
                                        f"ocs_group_name {group!r} is already used by {owners[group]}; "
                                        "each ingestion group needs its own name"))
        else:
            owners[group] = file
    return contracts, errors


def _check_file(file: Path, env: Mapping[str, str]) -> tuple[Contract | None, list[ContractError], str | None]:
    """(contract or None, errors, ocs_group_name if it is a valid string)."""
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return None, [ContractError(str(file), "$", f"cannot read the contract: {exc.strerror or exc}")], None
    except UnicodeDecodeError as exc:
        return None, [ContractError(str(file), "$", f"not UTF-8 text (byte {exc.start}); save it as UTF-8")], None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [ContractError(str(file), "$", f"invalid JSON at line {exc.lineno}, column {exc.colno}: "
                                                    f"{exc.msg}")], None
    if not isinstance(doc, dict):
        return None, [ContractError(str(file), "$", "a contract must be a JSON object "
                                                    "{ocs_group_name, source_type, dataset_config}")], None
    filling = fill_placeholders(doc, env)
    checker = _Checker(str(file), filling.secrets)
    if filling.problems:
        for loc, message in filling.problems:
            checker.fail(loc, message)
        return None, checker.errors(), None
    contract = checker.run(filling.value)
    group = filling.value.get("ocs_group_name")
    valid_group = isinstance(group, str) and re.match(NAME_PATTERN, group) is not None
    return (contract if not checker.problems else None), checker.errors(), group if valid_group else None


def _detail(value: Any, exc: Exception) -> str:
    """``: <exc>``, unless ``value`` was filled from placeholders: the text of other modules'
    exceptions may quote any part of it, and it may hold a secret."""
    if isinstance(value, Filled):
        return " (details withheld: the value comes from a ${...} placeholder)"
    return f": {exc}"


def _has_filled(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_filled(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_filled(v) for v in value)
    return isinstance(value, Filled)


def _dtype_problem(value: Any, exc: Exception) -> str:
    if isinstance(value, Filled):
        return f"invalid dtype {value!r}{_detail(value, exc)}"
    return str(exc)


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


class _Checker:
    """Validates one parsed contract, collecting every problem as (location, message)."""

    def __init__(self, file: str, secrets: Mapping[str, str]) -> None:
        self.file = file
        self.secrets = sorted(((v, k) for v, k in secrets.items() if len(v) >= _MIN_SCRUB),
                              key=lambda pair: -len(pair[0]))
        self.problems: list[tuple[Loc, str]] = []

    def fail(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, message))

    def errors(self) -> list[ContractError]:
        return [ContractError(self.file, json_path(loc), self._scrub(message)) for loc, message in self.problems]

    def _scrub(self, message: str) -> str:
        # Messages quote values with repr (which shows placeholders), but text from other
        # modules may format a value with str(): replace any environment value we filled in.
        for value, placeholder in self.secrets:
            message = message.replace(value, placeholder)
        return message

    # ------------------------------------------------------------------ contract

    def run(self, doc: dict[str, Any]) -> Contract | None:
        broken: set[int] = set()  # datasets (-1: dataset_config itself) with schema violations
        for where, message in schema_problems(doc):
            if len(where) >= 2 and where[0] == "dataset_config" and isinstance(where[1], int):
                broken.add(where[1])
            elif where[:1] == ("dataset_config",):
                broken.add(-1)
            self.fail(where, message)
        if -1 in broken and not isinstance(doc.get("dataset_config"), list):
            return None
        group = doc.get("ocs_group_name", "")
        source_type = doc.get("source_type", "")
        source_type = "stream" if source_type == "streaming" else source_type
        source_config = doc.get("source_config", {})
        if not isinstance(source_config, dict):  # reported above; check the datasets anyway
            source_config = {}
        config_format = self._config_format(source_config)
        datasets: list[Dataset] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(doc["dataset_config"]):
            if i in broken or not isinstance(raw, dict):
                continue
            loc: Loc = ("dataset_config", i)
            name = raw["source"]["name"]
            if name in seen:
                self.fail((*loc, "source", "name"), f"dataset name {name!r} is already used by "
                          f"{json_path(('dataset_config', seen[name], 'source', 'name'))}")
            seen.setdefault(name, i)
            dataset = self._dataset(loc, raw, group, source_type, config_format)
            if dataset is not None:
                datasets.append(dataset)
        if self.problems:
            return None
        return Contract(group=group, source_type=source_type, source_config=source_config,
                        datasets=tuple(datasets), file=self.file)

    # ------------------------------------------------------------------ dataset

    def _dataset(self, loc: Loc, raw: dict[str, Any], group: str, source_type: str,
                 config_format: str | None) -> Dataset | None:
        before = len(self.problems)
        for name in raw:
            if name not in _DATASET_KEYS:
                log.warning("%s: %s: unknown dataset key %r is ignored%s", self.file,
                            json_path((*loc, name)), name, did_you_mean(name, _DATASET_KEYS))
        source = raw["source"]
        features = self._features((*loc, "source", "features"), source["features"])
        parsed = [self._transformation((*loc, "transformations", j), t)
                  for j, t in enumerate(raw.get("transformations", []))]
        transformations = tuple(t for t in parsed if t is not None)
        schema: tuple[Feature, ...] | None = None
        if len(self.problems) == before:  # every feature and step parsed
            try:
                schema = tuple(transform_schema(tuple(features), transformations))
            except TransformSchemaError as exc:
                step = raw["transformations"][exc.index]
                self.fail((*loc, "transformations", exc.index),
                          exc.message if not _has_filled(step) else
                          "does not fit the fields declared at this step (details withheld: the step "
                          "holds ${...} placeholders)")
        names = {f.name for f in schema} if schema is not None else None
        key = self._key((*loc, "source", "key"), source.get("key"), names)
        quality = self._quality((*loc, "quality"), raw.get("quality", {}), schema)
        destination = self._destination((*loc, "destination"), raw["destination"], names)
        compatibility: str | None = None  # not declared: the registry keeps the subject's mode
        if "compatibility" in raw:
            try:
                compatibility = normalise_mode(raw["compatibility"])
            except ValueError:
                self.fail((*loc, "compatibility"), f"expected one of {', '.join(MODES)}, "
                          f"got {raw['compatibility']!r}")
        fmt = source.get("format") or config_format or _EXTENSIONS.get(
            posixpath.splitext(source.get("path", ""))[1].lower())
        if len(self.problems) != before or schema is None:
            return None
        assert quality is not None and destination is not None
        if "null_values" in source:
            null_values = frozenset(source["null_values"])
        elif source_type == "fs" and fmt == "csv":
            null_values = CSV_NULL_TOKENS
        else:
            null_values = frozenset()
        return Dataset(
            group=group, name=source["name"], path=source.get("path", ""),
            source_features=tuple(features), schema=schema,
            transformations=transformations,
            quality=quality, destination=destination, key=key, null_values=null_values,
            compatibility=compatibility, format=fmt, source=source,
        )

    def _config_format(self, source_config: Mapping[str, Any]) -> str | None:
        """``source_config.format`` (the datasets' default format), case-insensitive."""
        configured = source_config.get("format")
        if configured is None:
            return None
        if isinstance(configured, str) and configured.lower() in FORMATS:
            return configured.lower()
        self.fail(("source_config", "format"), f"expected one of {', '.join(FORMATS)}, got {configured!r}")
        return None

    def _key(self, loc: Loc, raw: Any, names: set[str] | None) -> tuple[str, ...]:
        """Key fields. Records are keyed after the transformations, so a key must be a field of
        the schema: a source feature that survives them, or a renamed or derived field."""
        if raw is None:
            return ()
        keys = (raw,) if isinstance(raw, str) else tuple(raw)
        for j, key in enumerate(keys):
            where = loc if isinstance(raw, str) else (*loc, j)
            if key in keys[:j]:
                self.fail(where, f"key field {key!r} is listed twice")
            elif names is not None and key not in names:
                self.fail(where, f"key field {key!r} is not a field of the dataset schema after the "
                                 f"transformations ({', '.join(sorted(names))})")
        return keys

    # ------------------------------------------------------------------ features

    def _features(self, loc: Loc, raw: list[dict[str, Any]]) -> list[Feature]:
        out: list[Feature] = []
        seen: dict[str, int] = {}
        for j, item in enumerate(raw):
            here = (*loc, j)
            for key in item:
                if key not in _FEATURE_KEYS:
                    log.warning("%s: %s: unknown feature key %r is ignored%s", self.file,
                                json_path((*here, key)), key, did_you_mean(key, _FEATURE_KEYS))
            name = item["name"]
            if name in seen:
                self.fail((*here, "name"), f"feature {name!r} is already declared at "
                                           f"{json_path((*loc, seen[name]))}")
            seen.setdefault(name, j)
            required = item.get("required")
            if required is None:
                required = item.get("nullable") is False
            elif "nullable" in item and item["nullable"] == required:
                log.warning("%s: %s: required=%s contradicts nullable=%s; required wins", self.file,
                            json_path(here), required, item["nullable"])
            feature = self._feature(here, item, required)
            if feature is not None:
                out.append(feature)
        return out

    def _feature(self, loc: Loc, raw: Mapping[str, Any], required: bool) -> Feature | None:
        """Build a Feature from ``name``, ``dtype`` and the constraint keys of ``raw``."""
        before = len(self.problems)
        try:
            dtype = parse_dtype(raw["dtype"])
        except ValueError as exc:
            self.fail((*loc, "dtype"), _dtype_problem(raw["dtype"], exc))
            return None
        bounds: dict[str, Any] = {}
        for key in ("min", "max"):
            if key not in raw:
                continue
            if dtype.name in ("string", "bool"):
                self.fail((*loc, key), f"{key!r} does not apply to {_a(str(dtype))} field "
                                       "(use max_length, pattern or allowed)")
                continue
            try:
                bounds[key] = parse_bound(raw[key], dtype)
            except ValueError:
                self.fail((*loc, key), f"expected {_BOUND_EXAMPLES.get(dtype.name, 'a finite number')} "
                                       f"for {_a(str(dtype))} field, got {raw[key]!r}")
        if len(bounds) == 2:
            try:
                inverted = bounds["min"] > bounds["max"]
            except TypeError:
                inverted = False
            if inverted:
                self.fail((*loc, "max"), f"max {raw['max']!r} is below min {raw['min']!r}")
        pattern = raw.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                self.fail((*loc, "pattern"), f"invalid regular expression {pattern!r}: {exc}")
        allowed = raw.get("allowed")
        for j, value in enumerate(allowed or ()):
            if value is None:
                self.fail((*loc, "allowed", j), "null cannot be an allowed value (leave the field "
                                                "optional instead)")
                continue
            try:
                coerce(value, dtype)
            except ValueError as exc:
                self.fail((*loc, "allowed", j), f"allowed value {value!r} is not a valid {dtype}"
                                                f"{_detail(value, exc)}")
        if len(self.problems) != before:
            return None
        constraints = {key: raw.get(key) for key in CONSTRAINT_KEYS}
        constraints["allowed"] = tuple(allowed) if allowed is not None else None
        return Feature(name=raw["name"], dtype=dtype, required=bool(required), description=raw.get("description"),
                       **constraints)

    # ------------------------------------------------------------------ transformations

    def _transformation(self, loc: Loc, raw: dict[str, Any]) -> Transformation | None:
        if "type" in raw and "op" in raw and raw["type"] != raw["op"]:
            self.fail((*loc, "op"), f"'op' is an alias of 'type' and they differ ({raw['op']!r} vs "
                                    f"{raw['type']!r}); give only one")
            return None
        op = raw.get("type", raw.get("op"))
        if op is None:
            self.fail((*loc, "type"), f"required key 'type' is missing (one of {', '.join(_OP_KEYS)})")
            return None
        before = len(self.problems)
        takes = _OP_KEYS[op]
        for key in raw:
            if key not in (*takes, "type", "op", "description"):
                self.fail((*loc, key), f"{key!r} does not apply to {_a(op)} transformation "
                                       f"(its keys: {', '.join(takes)})")
        if op == "rename":
            mapping = self._rename(loc, raw)
            if mapping is None or len(self.problems) != before:
                return None
            return Transformation("rename", tuple(mapping), {"mapping": mapping})
        if op == "derive":
            return self._derive(loc, raw) if len(self.problems) == before else None
        fields = self._targets(loc, raw)
        params: dict[str, Any] = {}
        if op == "cast":
            if "dtype" not in raw:
                self.fail((*loc, "dtype"), "required key 'dtype' is missing (the type to cast to)")
            else:
                try:
                    params["dtype"] = parse_dtype(raw["dtype"])
                except ValueError as exc:
                    self.fail((*loc, "dtype"), _dtype_problem(raw["dtype"], exc))
        elif op == "fill_null":
            if raw.get("value") is None:
                self.fail((*loc, "value"), "required key 'value' is missing or null (the value that "
                                           "replaces missing ones)")
            params["value"] = raw.get("value")
        if fields is None or len(self.problems) != before:
            return None
        return Transformation(op, fields, params)

    def _targets(self, loc: Loc, raw: Mapping[str, Any]) -> tuple[str, ...] | None:
        if "field" in raw and "fields" in raw:
            self.fail((*loc, "fields"), "give either 'field' or 'fields', not both")
            return None
        if "field" in raw:
            return (raw["field"],)
        if "fields" not in raw:
            self.fail((*loc, "field"), "required key 'field' (or 'fields') is missing")
            return None
        fields = tuple(raw["fields"])
        for j, name in enumerate(fields):
            if name in fields[:j]:
                self.fail((*loc, "fields", j), f"field {name!r} is listed twice")
        return fields

    def _rename(self, loc: Loc, raw: Mapping[str, Any]) -> dict[str, str] | None:
        if "mapping" in raw:
            if "from" in raw or "to" in raw:
                self.fail((*loc, "mapping"), "give either 'mapping' or 'from' and 'to', not both")
                return None
            mapping = dict(raw["mapping"])
            targets = list(mapping.values())
            for old, new in mapping.items():
                if targets.count(new) > 1:
                    self.fail((*loc, "mapping", old), f"several fields are renamed to {new!r}")
                    return None
            return mapping
        for key in ("from", "to"):
            if key not in raw:
                self.fail((*loc, key), f"required key {key!r} is missing (rename takes 'from' and 'to', "
                                       "or a 'mapping' {old: new})")
                return None
        return {raw["from"]: raw["to"]}

    def _derive(self, loc: Loc, raw: Mapping[str, Any]) -> Transformation | None:
        before = len(self.problems)
        for key in ("name", "expr", "dtype"):
            if key not in raw:
                self.fail((*loc, key), f"required key {key!r} is missing (derive takes name, expr and dtype)")
        if len(self.problems) != before:
            return None
        expr = None
        try:
            expr = compile_expr(raw["expr"])
        except ExprError as exc:
            self.fail((*loc, "expr"), f"expression does not parse{_detail(raw['expr'], exc)}")
        feature = self._feature(loc, raw, bool(raw.get("required", False)))
        if expr is None or feature is None:
            return None
        params = {"name": feature.name, "expr": raw["expr"], "dtype": feature.dtype, "feature": feature}
        return Transformation("derive", tuple(sorted(expr.fields)), params)

    # ------------------------------------------------------------------ quality

    def _quality(self, loc: Loc, raw: Mapping[str, Any], schema: tuple[Feature, ...] | None) -> QualityConfig | None:
        before = len(self.problems)
        tiers = {**_DEFAULT_TIERS, **raw.get("tiers", {})}
        if tiers["silver"] > tiers["gold"]:
            self.fail((*loc, "tiers", "silver"), f"silver ({tiers['silver']}) must not be above gold "
                                                 f"({tiers['gold']}): each is the lowest score of its tier")
        by_name = {f.name: f for f in schema} if schema is not None else None
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for j, item in enumerate(raw.get("rules", [])):
            here = (*loc, "rules", j)
            if item["name"] in seen:
                self.fail((*here, "name"), f"rule name {item['name']!r} is already used by "
                                           f"{json_path((*loc, 'rules', seen[item['name']]))}")
            seen.setdefault(item["name"], j)
            try:
                expr = compile_expr(item["expr"])
            except ExprError as exc:
                self.fail((*here, "expr"), f"expression does not parse{_detail(item['expr'], exc)}")
                continue
            unknown = sorted(expr.fields - set(by_name)) if by_name is not None else []
            if unknown and isinstance(item["expr"], Filled):
                self.fail((*here, "expr"), "uses fields that are not in the dataset schema (names withheld: "
                                           "the expression comes from a ${...} placeholder)")
            elif unknown:
                self.fail((*here, "expr"), f"unknown field(s) {', '.join(map(repr, unknown))}: rules may only "
                                           f"use fields of the dataset schema ({', '.join(by_name or ())})")
            rules.append(Rule(item["name"], item["expr"]))
        event_time = raw.get("event_time")
        if event_time is not None and by_name is not None:
            feature = by_name.get(event_time)
            if feature is None:
                self.fail((*loc, "event_time"), f"{event_time!r} is not a field of the dataset schema "
                                                f"({', '.join(by_name)})")
            elif not feature.dtype.is_temporal:
                self.fail((*loc, "event_time"), f"{event_time!r} is {_a(str(feature.dtype))} field; event_time needs "
                                                "a date or timestamp field")
        freshness = self._freshness((*loc, "freshness"), raw.get("freshness"))
        if freshness is not None and event_time is None:
            self.fail((*loc, "freshness"), "freshness is measured on event_time: set quality.event_time too")
        if len(self.problems) != before:
            return None
        return QualityConfig(tiers={"gold": float(tiers["gold"]), "silver": float(tiers["silver"])},
                             rules=tuple(rules), event_time=event_time, freshness=freshness)

    def _freshness(self, loc: Loc, raw: str | None) -> timedelta | None:
        if raw is None:
            return None
        try:
            value = isodate.parse_duration(raw)
        except (isodate.ISO8601Error, ValueError):
            self.fail(loc, f"expected an ISO-8601 duration such as PT24H or P7D, got {raw!r}")
            return None
        if isinstance(value, isodate.Duration):
            self.fail(loc, f"{raw!r}: years and months are ambiguous (their length varies); "
                           "use weeks, days or hours, e.g. P30D")
            return None
        if value <= timedelta(0):
            self.fail(loc, f"expected a positive duration, got {raw!r}")
            return None
        return value

    # ------------------------------------------------------------------ destination

    def _destination(self, loc: Loc, raw: Mapping[str, Any], names: set[str] | None) -> Destination | None:
        before = len(self.problems)
        path = raw["path"]
        if ".." in path.replace("\\", "/").split("/"):
            self.fail((*loc, "path"), f"{path!r} leaves the lake root: '..' is not allowed")
        normal = posixpath.normpath(path.lstrip("/"))
        if normal in ("", "."):
            self.fail((*loc, "path"), f"{path!r} must name a folder under the lake root, "
                                      "e.g. 'ecommerce/transactions'")
        features: tuple[str, ...] | None = None
        if "features" in raw:
            listed: list[str] = []
            for j, item in enumerate(raw["features"]):
                name = item if isinstance(item, str) else item["name"]
                here = (*loc, "features", j) if isinstance(item, str) else (*loc, "features", j, "name")
                if name in listed:
                    self.fail(here, f"{name!r} is listed twice")
                elif names is not None and name not in names:
                    self.fail(here, f"{name!r} is not a field of the dataset schema ({', '.join(sorted(names))})")
                listed.append(name)
            features = tuple(listed)
        if len(self.problems) != before:
            return None
        return Destination(
            path=normal, features=features,
            parquet_tiers=tuple(raw.get("parquet_tiers", TIERS)),
            elasticsearch_tiers=tuple(raw.get("elasticsearch_tiers", ("gold", "silver"))),
            raw=raw,
        )

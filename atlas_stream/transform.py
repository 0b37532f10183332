"""A dataset's transformations, applied to its feature list (once) and to each record (in order)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from atlas_stream.dtypes import CoercionError, coercer, is_missing
from atlas_stream.errors import ConfigError, ExprError
from atlas_stream.expr import EvalError, compile_expr
from atlas_stream.model import DType, Feature, Transformation

__all__ = ["OPS", "TransformSchemaError", "Transformer", "transform_schema"]

OPS: tuple[str, ...] = ("rename", "cast", "drop", "fill_null", "trim", "lower", "upper", "derive")

Step = Callable[[dict[str, Any]], None]


class TransformSchemaError(ConfigError, ValueError):
    """A transformation does not fit the feature list it is applied to."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        self.message = message
        super().__init__(f"transformations[{index}]: {message}")


def _need_declared(features: dict[str, Feature], t: Transformation, index: int) -> None:
    for name in t.fields:
        if name not in features:
            raise TransformSchemaError(index, f"{t.op}: field {name!r} is not declared at this step")


def _schema_step(features: dict[str, Feature], t: Transformation, index: int) -> dict[str, Feature]:
    """The feature list (name -> Feature, in order) after step ``t``; raises TransformSchemaError."""
    op = t.op
    if op == "rename":
        out = dict(features)
        for old, new in t.params["mapping"].items():
            if old not in out:
                raise TransformSchemaError(index, f"rename: field {old!r} is not declared at this step")
            if new in out:
                raise TransformSchemaError(index, f"rename: {old!r} -> {new!r}: {new!r} already exists")
            # rebuild to keep the renamed feature in its place
            out = {(new if k == old else k): (dataclasses.replace(f, name=new) if k == old else f)
                   for k, f in out.items()}
        return out
    if op == "cast":
        _need_declared(features, t, index)
        dtype: DType = t.params["dtype"]
        return {k: (dataclasses.replace(f, dtype=dtype) if k in t.fields else f)
                for k, f in features.items()}
    if op == "drop":
        return {k: f for k, f in features.items() if k not in t.fields}
    if op in ("fill_null", "trim", "lower", "upper"):
        _need_declared(features, t, index)
        return features
    if op == "derive":
        feature: Feature = t.params["feature"]
        if feature.name != t.params["name"]:
            raise TransformSchemaError(
                index, f"derive: name {t.params['name']!r} differs from its feature's {feature.name!r}")
        if feature.name in features:
            raise TransformSchemaError(index, f"derive: field {feature.name!r} already exists")
        try:
            expr = compile_expr(t.params["expr"])
        except ExprError as exc:
            raise TransformSchemaError(index, f"derive {feature.name!r}: {exc}") from None
        unknown = sorted(expr.fields - features.keys())
        if unknown:
            raise TransformSchemaError(
                index, f"derive {feature.name!r}: expression uses undeclared field(s) {', '.join(unknown)}")
        out = dict(features)
        out[feature.name] = feature
        return out
    raise TransformSchemaError(index, f"unknown operation {op!r} (known: {', '.join(OPS)})")


def transform_schema(source_features: Sequence[Feature],
                     transformations: Sequence[Transformation]) -> tuple[Feature, ...]:
    """The schema the transformations produce from the source features (order kept, derived last)."""
    features = {f.name: f for f in source_features}
    for index, t in enumerate(transformations):
        features = _schema_step(features, t, index)
    return tuple(features.values())


def _rename(mapping: Mapping[str, str]) -> Step:
    pairs = tuple(mapping.items())

    def step(rec: dict[str, Any]) -> None:
        for old, new in pairs:
            if old in rec:
                rec[new] = rec.pop(old)
    return step


def _cast(fields: tuple[str, ...], dtype: DType, nulls: frozenset[str]) -> Step:
    conv = coercer(dtype)

    def step(rec: dict[str, Any]) -> None:
        for name in fields:
            if name in rec and not is_missing(rec[name], nulls):
                try:
                    rec[name] = conv(rec[name])
                except CoercionError:
                    pass  # left as is: the type check of the scorer reports it
    return step


def _drop(fields: tuple[str, ...]) -> Step:
    def step(rec: dict[str, Any]) -> None:
        for name in fields:
            rec.pop(name, None)
    return step


def _fill_null(fields: tuple[str, ...], value: Any, nulls: frozenset[str]) -> Step:
    def step(rec: dict[str, Any]) -> None:
        for name in fields:
            if name not in rec or is_missing(rec[name], nulls):
                rec[name] = value
    return step


def _str_method(fields: tuple[str, ...], method: Callable[[str], str]) -> Step:
    def step(rec: dict[str, Any]) -> None:
        for name in fields:
            v = rec.get(name)
            if isinstance(v, str):
                rec[name] = method(v)
    return step


def _derive(name: str, text: str, features: Mapping[str, Feature], nulls: frozenset[str]) -> Step:
    expr = compile_expr(text)
    inputs = tuple((f, coercer(features[f].dtype)) for f in sorted(expr.fields))

    def step(rec: dict[str, Any]) -> None:
        values: dict[str, Any] = {}
        result: Any = None
        for field, conv in inputs:
            v = rec.get(field)
            if is_missing(v, nulls):  # absent keys read as None
                break
            try:
                values[field] = conv(v)
            except CoercionError:
                break
        else:
            try:
                result = expr.evaluate(values.__getitem__)
            except EvalError:
                result = None
        rec[name] = result
    return step


class Transformer:
    """Applies a dataset's transformations to one record. Never mutates its input; never raises
    on a bad record (a bad value is left for the scorer to report)."""

    def __init__(self, source_features: Sequence[Feature], transformations: Sequence[Transformation],
                 null_values: frozenset[str] = frozenset()) -> None:
        self.transformations = tuple(transformations)
        features = {f.name: f for f in source_features}
        steps: list[Step] = []
        for index, t in enumerate(self.transformations):
            before = features
            features = _schema_step(features, t, index)  # validates the step
            steps.append(self._step(t, before, null_values))
        self._steps = tuple(steps)
        self.schema: tuple[Feature, ...] = tuple(features.values())

    @staticmethod
    def _step(t: Transformation, before: Mapping[str, Feature], nulls: frozenset[str]) -> Step:
        if t.op == "rename":
            return _rename(t.params["mapping"])
        if t.op == "cast":
            return _cast(t.fields, t.params["dtype"], nulls)
        if t.op == "drop":
            return _drop(t.fields)
        if t.op == "fill_null":
            return _fill_null(t.fields, t.params["value"], nulls)
        if t.op == "trim":
            return _str_method(t.fields, str.strip)
        if t.op == "lower":
            return _str_method(t.fields, str.lower)
        if t.op == "upper":
            return _str_method(t.fields, str.upper)
        return _derive(t.params["name"], t.params["expr"], before, nulls)

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A new dict: ``record`` with every step applied in order."""
        rec = dict(record)
        for step in self._steps:
            step(rec)
        return rec

"""The batch path scores every record exactly as the stream does: same tier, score, failures
(names and order) and coerced values, record by record, on the sample contracts and on fuzzed
values of every dtype (odd numbers, null tokens, whitespace, timestamps with offsets, ...)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from atlas_stream.batch.arrow_quality import BatchScorer
from atlas_stream.batch.records import columns_from_records
from atlas_stream.contracts import load_contract
from atlas_stream.lake import arrow_type
from atlas_stream.model import Dataset, QualityConfig, Rule, Transformation, parse_dtype
from atlas_stream.quality import DatasetScorer
from atlas_stream.samples import SampleGenerator

from ...batch_samples import FUZZ_KINDS, NUMBER_TEXT, ROOT, TEXT, TS_TEXT, fuzz_value
from ..builders import feat, sample_values

UTC = timezone.utc
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def assert_same(scorer: DatasetScorer, batch: BatchScorer, records: list[dict[str, Any]],
                now: datetime = NOW) -> None:
    """Score ``records`` both ways and compare every row."""
    cols = columns_from_records(records)
    got = batch.score(cols, len(records), now)
    tiers, scores, failures = got.tier.to_pylist(), got.score.to_pylist(), got.failures.to_pylist()
    values = {name: arr.to_pylist() for name, arr in got.features.items()}
    counts: dict[str, int] = {}
    for i, rec in enumerate(records):
        want = scorer.process(rec, now)
        r = want.report
        where = f"record {i}: {rec!r}"
        assert failures[i] == list(r.failures), where
        assert scores[i] == r.score, where
        assert tiers[i] == r.tier, where
        for name, value in want.record.items():
            assert values[name][i] == value, f"{where}: field {name}: {values[name][i]!r} != {value!r}"
        for fail in r.failures:
            counts[fail] = counts.get(fail, 0) + 1
    assert got.failure_counts == counts


def scorers(ds: Dataset) -> tuple[DatasetScorer, BatchScorer]:
    args = (ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    return DatasetScorer(*args), BatchScorer(*args)


# ------------------------------------------------------------------ fuzzed values

FUZZ_SCHEMA = (
    feat("i", "int", required=True, min=0.5, max=1000),
    feat("b", "bigint", pattern="[0-9]{2}", allowed=(12, -3, 0, 1)),
    feat("f", "double", min=-1, max=1e19, pattern=r"\d+\.\d+"),
    feat("d", "decimal(6,2)", min=0.005, max=1000, max_length=5),
    feat("d0", "decimal(38,0)"),
    feat("s", "string", pattern="[A-Z][a-z]+", max_length=5, allowed=("Ann", "straße", "US", "12", "true")),
    feat("flag", "bool", allowed=(True,)),
    feat("day", "date", min="2025-01-01", max="2025-12-31"),
    feat("ts", "timestamp", required=True, min="2025-01-01T00:00:00Z", max="2025-06-01T12:00:00+00:00",
         pattern=".*00:00"),
)
FUZZ_QUALITY = QualityConfig(
    rules=(Rule("sum", "i + f > 2"), Rule("ratio", "f / i < 10"), Rule("mod", "b % 3 == 1"),
           Rule("text", "s + 'x' != 'Annx' or flag"), Rule("time", "ts - ts == 0 and day - day == 0"),
           Rule("mixed", "abs(-d) >= 0 and not (i == 12.0)"), Rule("bad_types", "s > 1"),
           Rule("div", "i / (i - i) > 0 or d > 5")),
    event_time="ts", freshness=timedelta(days=7),
)


@pytest.mark.parametrize("csv", [True, False], ids=["csv-text", "json-values"])
def test_fuzzed_values_score_the_same(csv: bool) -> None:
    rng = random.Random(5 if csv else 6)
    records: list[dict[str, Any]] = []
    for _ in range(3000):
        rec = {name: fuzz_value(rng, kind, csv) for name, kind in FUZZ_KINDS.items()}
        if not csv and rng.random() < 0.2:
            rec.pop(rng.choice(list(rec)))
        if rng.random() < 0.05:
            rec["extra"] = None if not csv else ""
        records.append(rec)
    nulls = frozenset({"NA", "N/A", "NULL", "null", "-"}) if csv else frozenset()
    args = (FUZZ_SCHEMA, FUZZ_QUALITY, (), FUZZ_SCHEMA, nulls)
    assert_same(DatasetScorer(*args), BatchScorer(*args), records)


def test_every_record_in_one_csv_column_kind() -> None:
    """Whole columns of one unusual shape (the vectorised paths, not only mixed columns)."""
    rng = random.Random(7)
    for kind in ("number", "timestamp"):
        records = [{name: rng.choice(NUMBER_TEXT if FUZZ_KINDS[name] == "number" else TS_TEXT)
                    if FUZZ_KINDS[name] == kind else fuzz_value(rng, FUZZ_KINDS[name], True)
                    for name in FUZZ_KINDS} for _ in range(500)]
        args = (FUZZ_SCHEMA, FUZZ_QUALITY, (), FUZZ_SCHEMA, frozenset({"NA"}))
        assert_same(DatasetScorer(*args), BatchScorer(*args), records)


# ------------------------------------------------------------------ transformations

def _derive(name: str, expr: str, dtype: str, **kw: Any) -> Transformation:
    f = feat(name, dtype, **kw)
    return Transformation("derive", (), {"name": name, "expr": expr, "dtype": f.dtype, "feature": f})


def test_transformations_match() -> None:
    source = (feat("id", "int", required=True), feat("name", "string", pattern="[A-Z][a-z]+"),
              feat("qty", "int"), feat("price", "decimal(8,2)"), feat("code", "string"), feat("junk", "string"),
              feat("n", "string"))
    steps = (
        Transformation("rename", ("id",), {"mapping": {"id": "order_id"}}),
        Transformation("trim", ("name", "code"), {}),
        Transformation("upper", ("code",), {}),
        Transformation("lower", ("name",), {}),
        Transformation("fill_null", ("qty",), {"value": 1}),
        Transformation("fill_null", ("code",), {"value": "NONE"}),
        Transformation("cast", ("n",), {"dtype": parse_dtype("int")}),
        Transformation("drop", ("junk", "unwanted"), {}),
        _derive("total", "qty * price", "decimal(10,2)", min=0),
        _derive("label", "name + '-' + code", "string", max_length=12),
        _derive("big", "order_id * 1000000000000", "bigint"),
        _derive("half", "qty / 2", "double"),
    )
    from atlas_stream.transform import transform_schema

    schema = transform_schema(source, steps)
    quality = QualityConfig(rules=(Rule("pos", "total > 0"), Rule("big", "big > 0")))
    rng = random.Random(8)
    records = []
    for i in range(2000):
        rec: dict[str, Any] = {
            "id": rng.choice([i, str(i), f" {i} ", None, "x", 2 ** 62, 9_000_000_000]),
            "name": rng.choice(TEXT + [None, 5]),
            "qty": rng.choice([1, 2, "3", None, "", "NA", 2.5, 10 ** 15]),
            "price": rng.choice(["9.99", "0.1", 0.1, "1e2", None, "abc", 3, "123456.789"]),
            "code": rng.choice([" ab ", "straße", None, "", "x y"]),
            "junk": "j",
            "n": rng.choice(["12", "1.5", None, "x", 7, " 8 "]),
        }
        if rng.random() < 0.1:
            rec["unwanted"] = 1
        if rng.random() < 0.1:
            del rec["qty"]
        if rng.random() < 0.05:
            rec["order_id"] = "collides"
        records.append(rec)
    args = (schema, quality, steps, source, frozenset({"NA"}))
    assert_same(DatasetScorer(*args), BatchScorer(*args), records)


# ------------------------------------------------------------------ the sample contracts

@pytest.mark.parametrize("file, as_text", [("ecommerce_transactions_fs.json", True),
                                           ("ecommerce_transactions_rdbms.json", False)])
def test_sample_contracts_match(file: str, as_text: bool) -> None:
    contract = load_contract(ROOT / "metadata" / file)
    for ds in contract.datasets:
        stream, batch = scorers(ds)
        gen = SampleGenerator(ds, seed=11, defect_rate=0.3)
        records: list[dict[str, Any]] = []
        for rec in sample_values(gen, 1500, NOW - timedelta(hours=1)):
            if as_text:  # a CSV row: every value is text, a missing one is empty
                rec = {k: "" if v is None else (v if isinstance(v, str) else orjson.dumps(v).decode())
                       for k, v in rec.items()}
                for name in [f.name for f in ds.source_features]:
                    rec.setdefault(name, gen.rng.choice(["", "NA", "-", " "]))
            records.append(rec)
        assert_same(stream, batch, records)


def test_plain_columns_take_the_fast_paths_and_still_match() -> None:
    """Whole batches of ordinary values (Arrow's casts alone), then the same with one value
    Arrow's cast refuses (Feb 30th) or reads only in the slow path."""
    rng = random.Random(9)
    plain = {
        "i": lambda: str(rng.randint(-5, 2000)),
        "b": lambda: str(rng.choice([12, -3, 0, 1, 77])),
        "f": lambda: f"{rng.uniform(-5, 50):.3f}",
        "d": lambda: rng.choice(["1.5", "12.", "999.99", "-0.50", "+3.25", "1000.00", "0.001"]),
        "d0": lambda: rng.choice(["12", "12.", "-7", "123456789012345678901234567890"]),
        "s": lambda: rng.choice(["Ann", "Bob", "straße"]),
        "flag": lambda: rng.choice(["true", "no"]),
        "day": lambda: rng.choice(["2025-03-01", "2025-12-31", "2024-02-29"]),
        "ts": lambda: rng.choice(["2025-05-30T10:00:00Z", "2025-05-31 23:59:59.5+02:00", "2025-06-01T11:00",
                                  "2025-05-30", "2025-05-29T00:00:00.123456-05:30", "0001-01-01T00:30:00+01:00"]),
    }
    args = (FUZZ_SCHEMA, FUZZ_QUALITY, (), FUZZ_SCHEMA, frozenset({"NA"}))
    stream, batch = DatasetScorer(*args), BatchScorer(*args)
    records = [{name: make() for name, make in plain.items()} for _ in range(400)]
    assert_same(stream, batch, records)
    records[7]["ts"] = "2025-02-30T10:00:00Z"
    records[8]["d"] = "1e2"
    records[9]["i"] = "+12.000"
    assert_same(stream, batch, records)


def test_python_whitespace_is_complete() -> None:
    import sys

    from atlas_stream.batch.arrow_values import PY_WHITESPACE

    assert PY_WHITESPACE == "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


# ------------------------------------------------------------------ numeric text, exhaustively

def _coerce_both_ways(values: list[str], dtype: str) -> None:
    """``coerce_column`` against the Python coercer, value by value (every value non-blank)."""
    import pyarrow as pa

    from atlas_stream.batch.arrow_values import coerce_column, full
    from atlas_stream.dtypes import CoercionError, coercer

    dt = parse_dtype(dtype)
    conv = coercer(dt)
    got = coerce_column(pa.array(values, pa.string()), dt, full(len(values), True))
    typed, ok = got.values.to_pylist(), got.ok.to_pylist()
    for i, text in enumerate(values):
        try:
            want: Any = conv(text)
        except CoercionError:
            want = None
        assert (ok[i], typed[i]) == (want is not None, want), f"{dtype}: {text!r}"


def _strings(alphabet: str, longest: int) -> list[str]:
    out, level = [], [""]
    for _ in range(longest):
        level = [s + c for s in level for c in alphabet]
        out += level
    return [s for s in out if s.strip()]


def _arrow_reads(text: str, typ: Any = None) -> bool:
    import pyarrow as pa

    try:
        pa.array([text]).cast(typ or pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        return False
    return True


NUMERIC_EDGES = [
    "0", "00", "007", "-0", "+0", "-007", "+5", "-5", "1.", ".5", "-.5", "+.5", "0.", ".", "..", "1..2", "1.2.3",
    "1e2", "1E2", "1e-2", "-1e+2", "1e", "e1", "inf", "nan", "Infinity", "0x1F", "1_000", " 12 ", "\u00a012\u3000",
    "\u0661\u0662", "\uff11\uff12", "1\u0662", "²", "12a", "", "1 2", "123456789012345678", "1234567890123456789",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "000000000000000000000000000000000000000001", "1." + "0" * 40, "0." + "0" * 40, "999999999999999.9",
    "123456789012345", "1234567890123456", "0.123456789012345", "1.234", "1.230", "9999.99", "10000.00",
    "99999.99", "-9999.99", "0.001", "0.005", "12345678901234567890123456789012345678",
    "123456789012345678901234567890123456789", "1" * 15 + "." + "1" * 15, "1" * 16, "." + "1" * 15,
    "9" * 28, "9" * 28 + ".9", "9" * 29, "9" * 36, "9" * 37, "9" * 38 + ".", "0" * 30 + "1.5", "1" + "0" * 27 + ".",
]


@pytest.mark.parametrize("dtype", ["int", "bigint", "double", "decimal(6,2)", "decimal(38,0)", "decimal(2,2)",
                                   "decimal(38,10)"])
def test_numeric_text_reads_as_in_python(dtype: str) -> None:
    """Signs, leading zeros, points, exponents, whitespace, non-ASCII digits and overflow: every
    short string over digits, signs, points and 'e', one whole column each (the cheap paths), then
    mixed with the edge cases (cheap rows next to rows the exact path reads)."""
    everything = _strings("019.+-e", 4)
    _coerce_both_ways(everything, dtype)
    plain = [s for s in everything if s.strip("0123456789.") == "" and s.count(".") <= 1 and s != "."]
    _coerce_both_ways(plain, dtype)
    _coerce_both_ways([s for s in NUMERIC_EDGES if s.strip()], dtype)
    # the ones Arrow's cast reads, alone in a column: no row makes the batch take the exact path
    typ = arrow_type(parse_dtype(dtype))
    _coerce_both_ways([s for s in everything + NUMERIC_EDGES if s.strip() and _arrow_reads(s, typ)], dtype)
    rng = random.Random(3)
    mixed = plain * 3 + [s for s in NUMERIC_EDGES if s.strip()]
    rng.shuffle(mixed)
    _coerce_both_ways(mixed, dtype)


def _mutations(base: str, alphabet: str) -> list[str]:
    """``base`` with each character replaced by, or preceded by, each of ``alphabet``, or left out."""
    out = []
    for i in range(len(base)):
        out += [base[:i] + c + base[i + 1:] for c in alphabet] + [base[:i] + c + base[i:] for c in alphabet]
        out.append(base[:i] + base[i + 1:])
    return out


TS_EDGES = [
    "2025-01-31T23:59:59Z", "2025-01-31T23:59:59.1Z", "2025-01-31T23:59:59.12Z", "2025-01-31T23:59:59.123Z",
    "2025-01-31T23:59:59.1234Z", "2025-01-31T23:59:59.12345Z", "2025-01-31T23:59:59.123456Z",
    "2025-01-31T23:59:59.1234567Z", "2025-01-31T23:59:59.Z", "2025-01-31T23:59Z", "2025-01-31T23Z", "2025-01-31Z",
    "2025-01-31 23:59:59.123Z", "2025-01-31t23:59:59.123Z", "2025-01-31T23:59:59.123z", "2024-02-29T00:00:00Z",
    "2025-02-29T00:00:00Z", "2025-02-30T00:00:00.000Z", "2025-04-31T00:00:00Z", "2025-13-01T00:00:00Z",
    "2025-00-01T00:00:00Z", "2025-01-00T00:00:00Z", "2025-01-01T24:00:00Z", "2025-01-01T23:60:00Z",
    "2025-01-01T23:00:60Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
    "2025-01-31T23:59:59-00:00Z", "2025-01-31T23:59:59+01:00", "2025-01-31T23:59:59.5-05:30",
    "20250131T235959Z", "2025-01-31T235959Z", "2025-01-31T23:59:59,123Z", " 2025-01-31T23:59:59.123Z ",
    "2025-01-31T23:59:59.123Z\u3000", "\u0662025-01-31T23:59:59.123Z", "2025-W05-1T00:00:00Z", "-025-01-31T00:00:00Z",
]


@pytest.mark.parametrize("base", ["2025-01-31T23:59:59.123Z", "2024-02-29T00:00:00Z", "0001-01-01T00:00:00.5Z"])
def test_timestamp_text_reads_as_in_python(base: str) -> None:
    """Every one-character change of a timestamp (digits, separators, zone letters, whitespace):
    a whole column of the ordinary layout (the cheap path), then mixed with every edge case."""
    rng = random.Random(4)
    ordinary = [base] * 50 + [base.replace("2", "1")] * 50
    _coerce_both_ways(ordinary, "timestamp")
    variants = _mutations(base, "0129-:.TZ+ z,") + TS_EDGES
    _coerce_both_ways(variants, "timestamp")
    # the ones Arrow's cast reads, alone in a column: no row makes the batch take the exact path
    _coerce_both_ways([v for v in variants if v.strip() and _arrow_reads(v)], "timestamp")
    for _ in range(20):  # batches where most rows take the cheap path
        mixed = ordinary + rng.sample(variants, 3)
        rng.shuffle(mixed)
        _coerce_both_ways([s for s in mixed if s.strip()], "timestamp")


def test_patterns_on_columns_of_few_values_match() -> None:
    """A pattern on a column of few distinct values is matched once per value: the same answers,
    also for non-ASCII text, Python's \\s, values not of the type, missing ones, and when the
    column has many values after a first batch of few (and the other way round)."""
    schema = (feat("s", "string", pattern="[A-Z][a-z]+"), feat("w", "string", pattern=r"\S+\s\S+"),
              feat("n", "int", pattern="[0-9]{2}"), feat("t", "timestamp", pattern=".*00:00"))
    few = {"s": ["Ann", "straße", "Bob", " ", "", "NA", "Ünal", "a b", None, 5],
           "w": ["a b", "a\x0bb", "a\u3000b", "ab", "a\x1cb", None],
           "n": ["12", "7", "x", "-12", 12, 1.5, None],
           "t": ["2025-05-30T10:00:00Z", "2025-05-30T10:00:01+02:00", "x", None]}
    rng = random.Random(12)
    args = (schema, QualityConfig(), (), schema, frozenset({"NA"}))
    low = [{k: rng.choice(v) for k, v in few.items()} for _ in range(2000)]
    high = [{"s": f"Ab{i}" if i % 3 else "Ab", "w": f"a {i}", "n": str(i), "t": f"2025-05-30T10:{i % 60:02d}:00Z"}
            for i in range(2000)]
    for first, then in ((low, high), (high, low)):
        stream, batch = DatasetScorer(*args), BatchScorer(*args)
        assert_same(stream, batch, first)
        assert_same(stream, batch, then)


@pytest.mark.parametrize("precision, scale", [(12, 2), (15, 15), (15, 0), (9, 4), (16, 2), (38, 10), (1, 0)])
def test_decimals_in_rules_are_python_floats(precision: int, scale: int) -> None:
    """A decimal in an expression is ``float(Decimal)``: the correctly rounded double, also at
    the largest values, for negative ones, zero, nulls and a slice of an array."""
    from decimal import Context, Decimal

    import pyarrow as pa

    from atlas_stream.batch.arrow_transform import decimal_floats

    rng = random.Random(precision * 100 + scale)
    top = 10 ** precision - 1
    unscaled = [0, 1, -1, top, -top, top // 3, -(top // 7)] + [rng.randint(-top, top) for _ in range(3000)]
    unscaled += [rng.randint(-min(999, top), min(999, top)) for _ in range(100)]
    exact = Context(prec=60)
    values: list[Decimal | None] = [Decimal(u).scaleb(-scale, exact) for u in unscaled]
    values[5:3000:97] = [None] * len(values[5:3000:97])
    arr = pa.array([None if v is None else str(v) for v in values]).cast(pa.decimal128(precision, scale))
    for part in (arr, arr.slice(3, 500)):
        got = decimal_floats(part).to_pylist()
        want = [None if v is None else float(v) for v in part.to_pylist()]
        assert got == want

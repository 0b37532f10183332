"""Sample input shared by the batch tests of tests/unit/batch and tests/integration/batch: CSV rows
of the sample file contract with the tiers the stream scorer gives them, and fuzzed values of every
kind (odd numbers, null tokens, whitespace, timestamps with offsets, ...)."""

from __future__ import annotations

import csv
import random
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from atlas_stream.contracts import load_contract
from atlas_stream.quality import DatasetScorer
from atlas_stream.samples import SampleGenerator

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "metadata" / "ecommerce_transactions_fs.json"


def sample_rows(n: int, seed: int = 3) -> list[dict[str, str]]:
    """CSV rows of the sample contract: text values, some of them defective or missing."""
    ds = load_contract(CONTRACT).datasets[0]
    gen = SampleGenerator(ds, seed=seed, defect_rate=0.3)
    names = [f.name for f in ds.source_features]
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        value, _ = gen.raw()
        try:
            rec = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        rows.append({k: "" if rec.get(k) is None else rec[k] if isinstance(rec[k], str) else orjson.dumps(rec[k]).decode()
                     for k in names})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def expected_tiers(rows: list[dict[str, Any]], now: datetime) -> Counter[str]:
    ds = load_contract(CONTRACT).datasets[0]
    scorer = DatasetScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    return Counter(scorer.process(r, now).report.tier for r in rows)


# ------------------------------------------------------------------ fuzzed values

WS = ["", " ", "\t", "\u3000", "\x1c", "\u200b", "\n"]
NUMBER_TEXT = ["12", "+12", "-0", "0012", "12.0", "12.", "12.5", ".5", "-.5", "1e3", "1E-2", "1_000", "0x10",
               "inf", "nan", "99999999999999999999", "9223372036854775807", "9223372036854775808",
               "-9223372036854775808", "1.005", "123456789.12", "12345678901.5", "0.000", "-0.00", "٣",
               "1e999", "+", ".", "", "  7  ", "3.14159", "100.10", "1000000.001"]
TS_TEXT = ["2025-06-01T11:00:00Z", "2025-06-01 11:00:00", "2025-06-01T11:00", "2025-06-01", "20250601",
           "2025-06-01T11:00:00.123", "2025-06-01T11:00:00.123456", "2025-06-01T11:00:00.5",
           "2025-06-01T11:00:00+02:00", "2025-06-01T11:00:00-05:30", "2025-06-01T11:00:00+0200",
           "2025-02-29T00:00:00", "2024-02-29T00:00:00", "2025-13-01T00:00:00", "2025-06-01T24:00:00",
           "2025-06-01T23:59:60", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00",
           "2025-05-20T00:00:00Z", "2025-06-01t11:00", "2025-06-01T11", "not a date", "2025-W22-1",
           "2025-06-01T11:00:00.1234567", "2025-06-01T11:00:00+23:59", "0000-01-01"]
BOOL_TEXT = ["true", "TRUE", " yes ", "Y", "n", "0", "1", "on", "t", "F", "İ", "K", "no "]
TEXT = ["Ann", "ann", "ANN", "Ünïcode", "straße", "  padded  ", "X" * 12, "A1", "ab\ncd", "Ab\x0b", "NA", "null",
        "-", "N/A", "é", "US", "us", "TX-0000000001", "tx-0000000001"]


def fuzz_value(rng: random.Random, kind: str, csv: bool) -> Any:
    pool = {"number": NUMBER_TEXT, "timestamp": TS_TEXT, "bool": BOOL_TEXT, "text": TEXT}[kind]
    if csv or rng.random() < 0.6:
        text = rng.choice(pool)
        if rng.random() < 0.15:
            text = rng.choice(WS) + text + rng.choice(WS)
        return text
    return rng.choice([None, 0, 1, 12, -3, 12.0, 12.5, 1e20, 0.1 * 3, 2 ** 63, -(2 ** 53) - 1, True, False,
                       "12", {"a": 1}, [1], Decimal("1.50"), 3.0e-7, 123.45])


FUZZ_KINDS = {"i": "number", "b": "number", "f": "number", "d": "number", "d0": "number", "s": "text",
              "flag": "bool", "day": "timestamp", "ts": "timestamp"}

"""Constants built from their bytes are the values pyarrow converts from Python, and a batch run
of a CSV file never converts a Python value (pyarrow would import pandas: 0.25 s, 50 MB)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from atlas_stream.batch.arrow_const import const, const_array, counting, null_of
from atlas_stream.batch.scoring import _micros

from ...batch_samples import sample_rows, write_csv

ROOT = Path(__file__).resolve().parents[3]

CASES: list[tuple[list[Any], pa.DataType]] = [
    ([], pa.int64()),
    ([0, 1, -1, 2 ** 63 - 1, -(2 ** 63)], pa.int64()),
    ([0, 127, -128], pa.int8()),
    ([0, 2 ** 31 - 1, -(2 ** 31)], pa.int32()),
    ([0.0, -0.0, 1.5, -1e300, float("inf"), 5e-324], pa.float64()),
    ([True, False, True] * 7, pa.bool_()),
    ([False] * 9, pa.bool_()),
    ([], pa.string()),
    (["", "a", "NULL", "ß", "日本語", "x" * 300], pa.string()),
    ([0, 1_700_000_000_123_456, -1], pa.timestamp("us", tz="UTC")),
    ([0, 19_000, -1], pa.date32()),
    ([Decimal("0.00"), Decimal("-12.5"), Decimal("0.0000001"), Decimal("99999999999.99")], pa.decimal128(38, 7)),
]


@pytest.mark.parametrize("values, typ", CASES)
def test_arrays_and_scalars_equal_what_pyarrow_converts(values: list[Any], typ: pa.DataType) -> None:
    if pa.types.is_timestamp(typ) or pa.types.is_date32(typ):
        expected = pa.array(values, pa.int64() if pa.types.is_timestamp(typ) else pa.int32()).cast(typ)
    else:
        expected = pa.array(values, typ)
    got = const_array(values, typ)
    assert got.type == expected.type and got.equals(expected) and got.null_count == 0
    for value in values:
        scalar = const(value, typ)
        want = expected[values.index(value)]
        assert scalar.type == want.type and scalar.equals(want) and scalar.as_py() == want.as_py()


def test_inferred_types_nulls_and_counting() -> None:
    for value in (True, 0, -7, 2.5, "", "abc"):
        assert const(value).equals(pa.scalar(value)) and const(value).type == pa.scalar(value).type
    assert const(1) is const(1) and const(True).type == pa.bool_()  # cached, and True is not 1
    assert null_of(pa.string()).equals(pa.scalar(None, pa.string()))
    assert counting(5).to_pylist() == [0, 1, 2, 3, 4] and counting(40_000).to_pylist() == list(range(40_000))
    for t in (datetime(2026, 12, 5, 17, 30, 1, 123456, tzinfo=timezone.utc), datetime(1969, 7, 20, 20, 17)):
        assert const(_micros(t), pa.timestamp("us", tz="UTC")).equals(pa.scalar(t, pa.timestamp("us", tz="UTC")))
    assert const(19_000, pa.int32()).cast(pa.date32()).as_py() == date(2022, 1, 8)


def test_a_csv_batch_run_does_not_import_pandas(fs_batch_env: Path) -> None:
    write_csv(fs_batch_env / "landing" / "transactions" / "day1.csv", sample_rows(500))
    code = ("import sys; from atlas_stream.cli import main; code = main(['batch', '--ocs', "
            "'ecommerce_transactions_fs', '--json']); assert code == 0, code; "
            "print('pandas' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False"

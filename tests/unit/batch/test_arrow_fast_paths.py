"""The arrow engine's shortcuts give what the slow path (and Python) gives: strip() skipped on
text with nothing to strip, max_length from byte lengths, blank and null tokens in one lookup."""

from __future__ import annotations

import itertools
import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from atlas_stream.batch.arrow_quality import _length_check
from atlas_stream.batch.arrow_values import (PY_WHITESPACE, Coerced, Col, _nothing_to_strip, forget_stripped,
                                             missing_mask, strip)
from atlas_stream.dtypes import is_missing

from ..builders import feat

# ASCII letters and digits, every kind of whitespace at either end, non-ASCII letters of two to
# four bytes, and the null tokens of the tests below
ALPHABET = ["a", "Z", "7", " ", "\t", "\n", "\x0b", "\x1c", "\x1f", "\x85", "\xa0", "\u2007", "\u3000", "é", "ß",
            "日", "\U0001f600", "N", "A", "-"]


def random_texts(rng: random.Random, n: int) -> list[str | None]:
    return [None if rng.random() < 0.03 else "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 5)))
            for _ in range(n)]


def arrays(values: list[str | None]) -> list[pa.Array]:
    """The array, slices of it (offsets not at 0) and single values."""
    arr = pa.array(values, pa.string())
    return [arr, arr.slice(1), arr.slice(3, 50)] + [arr.slice(i, 1) for i in range(0, len(arr), 97)]


def test_strip_is_str_strip_with_and_without_the_shortcut() -> None:
    rng = random.Random(11)
    took_shortcut = 0
    for _ in range(300):
        for arr in arrays(random_texts(rng, rng.choice([1, 5, 200]))):
            forget_stripped()
            expected = [None if v is None else v.strip() for v in arr.to_pylist()]
            took_shortcut += _nothing_to_strip(arr)
            assert strip(arr).to_pylist() == expected
            assert pc.utf8_trim(arr, PY_WHITESPACE).to_pylist() == expected
    clean = pa.array(["TX-1", "a b", "x", "7é7"])  # inner spaces and non-ASCII letters stay
    assert _nothing_to_strip(clean) and strip(clean) is clean and took_shortcut > 0
    for edge in [" a", "a ", "a\x1f", "\xa0a", "aé", "éa", "a\u3000"]:
        assert not _nothing_to_strip(pa.array(["ok", edge]))
    forget_stripped()


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 5, 7, 20])
def test_max_length_counts_characters_not_bytes(limit: int) -> None:
    rng = random.Random(limit)
    check = _length_check(feat("s", "string", max_length=limit))
    for _ in range(100):
        values = random_texts(rng, rng.choice([1, 30]))
        arr = pa.array(values, pa.string())
        ok = pc.is_valid(arr)
        got = check(Coerced(arr, ok), arr).to_pylist()
        assert got == [v is not None and len(v) <= limit for v in values]


@pytest.mark.parametrize("nulls", [frozenset(), frozenset({"NA"}), frozenset({"", "NA", "N/A", "null"}),
                                   frozenset({"a"}), frozenset({"日"})])
def test_blank_and_null_tokens_in_one_lookup(nulls: frozenset[str]) -> None:
    rng = random.Random(len(nulls))
    extra = ["NA", " NA ", "N/A", "null", "NULL", "", "  ", "a", "日", "NAN"]
    for _ in range(200):
        values = random_texts(rng, rng.choice([1, 40])) + [rng.choice(extra) for _ in range(rng.randint(0, 3))]
        for arr in arrays(values):
            forget_stripped()
            got = missing_mask(Col(arr), len(arr), nulls).to_pylist()
            assert got == [is_missing(v, nulls) for v in arr.to_pylist()]
    # no value short enough to be a token or blank: no lookup, nothing missing
    long_text = pa.array(["long enough", "x" * 9])
    assert missing_mask(Col(long_text), 2, frozenset({"NA"})).to_pylist() == [False, False]
    forget_stripped()


def test_every_short_text_of_a_small_alphabet() -> None:
    """Exhaustive over every string of up to three characters of a few telling ones."""
    chars = ["a", " ", "\x1c", "\xa0", "é", "\u3000"]
    values = ["".join(p) for k in range(4) for p in itertools.product(chars, repeat=k)]
    arr = pa.array(values, pa.string())
    forget_stripped()
    assert strip(arr).to_pylist() == [v.strip() for v in values]
    assert missing_mask(Col(arr), len(arr), frozenset({"a", ""})).to_pylist() == [
        is_missing(v, frozenset({"a", ""})) for v in values]
    check = _length_check(feat("s", "string", max_length=2))
    assert check(Coerced(arr, pc.is_valid(arr)), arr).to_pylist() == [len(v) <= 2 for v in values]
    forget_stripped()

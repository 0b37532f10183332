"""Gateway edge checks: request paths, frame decoding, replies and record keys (no I/O)."""

from __future__ import annotations

import orjson
import pytest

from atlas_stream.errors import SettingsError
from atlas_stream.messages import record_key
from atlas_stream.settings import Settings
from atlas_stream.sources.gateway.frames import (
    BINARY_FRAME_ERROR,
    FrameError,
    decode_frame,
    error_reply,
    ok_reply,
    parse_ingest_path,
)

MiB = 1 << 20


def _decode(text: str, max_bytes: int = MiB, max_records: int = 10_000,
            max_record_bytes: int | None = 1_000_000) -> list[dict]:
    return decode_frame(text, max_bytes, max_records, max_record_bytes)[0]


@pytest.mark.parametrize(("path", "expected"), [
    ("/ingest/orders/lines", ("orders", "lines", None)),
    ("/ingest/orders/lines?token=abc", ("orders", "lines", "abc")),
    ("/ingest/my-group_1/data_set?x=1&token=a%2Fb", ("my-group_1", "data_set", "a/b")),
    ("/ingest/orders/lines?token=", ("orders", "lines", "")),
])
def test_ingest_paths_give_group_dataset_and_token(path: str, expected: tuple[str, str, str | None]) -> None:
    parsed = parse_ingest_path(path)
    assert parsed is not None
    assert (parsed.group, parsed.dataset, parsed.param("token")) == expected


@pytest.mark.parametrize("path", ["/", "/ingest", "/ingest/orders", "/ingest/orders/", "/ingest//lines",
                                  "/ingest/orders/lines/extra", "/other/orders/lines", "ingest/orders/lines"])
def test_other_paths_are_not_ingest_endpoints(path: str) -> None:
    assert parse_ingest_path(path) is None


def test_one_object_or_an_array_of_objects() -> None:
    assert _decode('{"a": 1}') == [{"a": 1}]
    assert _decode('[{"a": 1}, {"b": [2, {"c": null}]}]') == [{"a": 1}, {"b": [2, {"c": None}]}]
    assert _decode("[]") == []
    records, values = decode_frame('{"b": 1.5,  "a": "é"}', MiB, 10, None)
    assert values == [orjson.dumps(records[0])] and orjson.loads(values[0]) == {"b": 1.5, "a": "é"}


def test_json_that_orjson_refuses_but_the_standard_allows_is_accepted() -> None:
    records, values = decode_frame('{"big": 123456789012345678901234567890, "s": "\\ud800"}', MiB, 10, None)
    assert records[0]["big"] == 123456789012345678901234567890
    assert values == [b'{"big":123456789012345678901234567890,"s":"\\ud800"}']


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": ', "invalid JSON"),
    ("", "invalid JSON"),
    ('{"a": NaN}', "invalid JSON"),
    ("42", "JSON number"),
    ('"text"', "JSON string"),
    ("null", "JSON null"),
    ("true", "JSON boolean"),
])
def test_frames_that_are_not_objects_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        _decode(text)


def test_non_object_items_refuse_the_whole_frame_naming_them() -> None:
    with pytest.raises(FrameError) as err:
        _decode('[{"a": 1}, 2, {"b": 2}, [3], null]')
    assert err.value.items == [1, 3, 4]
    assert "items 1, 3, 4 are not JSON objects (array, null, number)" in str(err.value)
    with pytest.raises(FrameError) as many:
        _decode("[" + ",".join(["1"] * 25) + "]")
    assert len(many.value.items) == 25 and "and 15 more" in str(many.value)


def test_size_and_count_limits() -> None:
    with pytest.raises(FrameError, match="over the 100-byte limit"):
        _decode('{"a": "' + "x" * 100 + '"}', max_bytes=100)
    with pytest.raises(FrameError, match="over the 100-byte limit"):  # 60 characters, 120 bytes
        _decode('{"a": "' + "é" * 55 + '"}', max_bytes=100)
    with pytest.raises(FrameError, match="holds 4 objects, more than the limit of 3"):
        _decode("[{}, {}, {}, {}]", max_records=3)
    with pytest.raises(FrameError) as err:
        _decode('[{"a": 1}, {"a": "' + "x" * 50 + '"}]', max_record_bytes=40)
    assert err.value.items == [1] and "40-byte message limit" in str(err.value)


def test_replies() -> None:
    assert orjson.loads(ok_reply(3, 10)) == {"ok": True, "count": 10, "frame": 3}
    assert orjson.loads(error_reply(1, BINARY_FRAME_ERROR)) == {
        "ok": False, "error": "binary frames are not accepted; send JSON text", "frame": 1, "count": 0,
        "not_accepted": "all", "retriable": False}
    partial = orjson.loads(error_reply(2, "broker down", not_accepted=[1, 2], count=1, retriable=True))
    assert partial["not_accepted"] == [1, 2] and partial["count"] == 1 and partial["retriable"] is True
    assert orjson.loads(error_reply(4, "bad items", items=[0]))["items"] == [0]


@pytest.mark.parametrize(("record", "fields", "key"), [
    ({"id": "A-1"}, ("id",), b"A-1"),
    ({"id": 17}, ("id",), b"17"),
    ({"id": True}, ("id",), b"true"),
    ({"site": "n", "sensor": 3}, ("site", "sensor"), b'["n",3]'),
    ({"site": "n"}, ("site", "sensor"), None),
    ({"id": None}, ("id",), None),
    ({"id": "A-1"}, (), None),
])
def test_keys_come_from_the_contract_key_fields(record: dict, fields: tuple[str, ...], key: bytes | None) -> None:
    assert record_key(record, fields) == key


def test_gateway_settings_have_working_defaults_and_are_checked() -> None:
    s = Settings.from_env({})
    assert s.gateway_max_frame_bytes == MiB and s.gateway_max_frame_records == 10_000
    assert s.gateway_send_timeout == 30.0 and s.gateway_max_in_flight >= s.gateway_max_frame_records
    s = Settings.from_env({"ATLAS_GATEWAY_MAX_FRAME_BYTES": "2048", "ATLAS_GATEWAY_SEND_TIMEOUT": "3"})
    assert s.gateway_max_frame_bytes == 2048 and s.gateway_send_timeout == 3.0
    with pytest.raises(SettingsError, match="ATLAS_GATEWAY_MAX_FRAME_BYTES"):
        Settings.from_env({"ATLAS_GATEWAY_MAX_FRAME_BYTES": "1MB"})

"""Database poller: connection URLs, dataset options, JSON conversion and the cursor."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

import pytest

from atlas_stream.errors import ConfigError, ContractError
from atlas_stream.model import Contract
from atlas_stream.settings import Settings
from atlas_stream.sources.database import build_database_sources
from atlas_stream.sources.database.config import database_url, dataset_options, safe_url
from atlas_stream.sources.database.rows import Cursor, encode_row, json_value, parse_ts, position, row_dict, ts_text

MakeContract = Callable[..., Contract]  # the db_contract fixture of conftest.py


# ---------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize("db_type, driver", [
    ("postgres", "postgresql+psycopg"), ("PostgreSQL", "postgresql+psycopg"), ("mysql", "mysql+pymysql"),
    ("mariadb", "mysql+pymysql"), ("mssql", "mssql+pyodbc"), ("sqlserver", "mssql+pyodbc"),
])
def test_classic_keys_build_the_url_with_the_right_driver(db_contract: MakeContract, db_type: str, driver: str) -> None:
    contract = db_contract({"db_type": db_type, "host": "db.internal", "port": "6543", "user": "atlas",
                            "password": "p@ss:w/rd?#%", "database": "shop"})
    url = database_url(contract)
    assert url.drivername == driver
    assert (url.host, url.port, url.username, url.database) == ("db.internal", 6543, "atlas", "shop")
    assert url.password == "p@ss:w/rd?#%"  # kept whole: the URL was built, not formatted
    if driver == "mssql+pyodbc":
        assert url.query == {"driver": "ODBC Driver 18 for SQL Server"}


def test_sqlite_from_classic_keys(db_contract: MakeContract) -> None:
    url = database_url(db_contract({"db_type": "sqlite", "database": "/data/shop.db"}))
    assert url.drivername == "sqlite" and url.database == "/data/shop.db" and url.host is None


def test_password_never_shows_in_reprs_or_logs(db_contract: MakeContract, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Sup3r-Secret!"
    contract = db_contract({"db_type": "postgres", "host": "h", "user": "u", "password": "${DB_PW}",
                            "database": "d"}, env={"DB_PW": secret})
    url = database_url(contract)
    assert url.password == secret
    assert secret not in repr(url) and secret not in str(url) and secret not in safe_url(url)
    assert safe_url(url) == "postgresql+psycopg://u:***@h/d"
    assert secret not in repr(contract)
    with caplog.at_level(logging.DEBUG):
        sources = build_database_sources(contract, Settings())
    assert secret not in caplog.text and "u:***@h/d" in caplog.text
    assert secret not in repr(sources[0][0].engine)  # type: ignore[attr-defined]


def test_url_key_and_bad_url(db_contract: MakeContract) -> None:
    url = database_url(db_contract({"url": "mysql+pymysql://root:${PW}@127.0.0.1:3306/shop"},
                                   env={"PW": "x/y@z"}))
    assert url.drivername == "mysql+pymysql" and url.database == "shop"
    with pytest.raises(ContractError) as err:
        database_url(db_contract({"url": "not a url ${PW}"}, env={"PW": "pw-value"}))
    assert err.value.json_path == "$.source_config.url" and "pw-value" not in str(err.value)


def test_unknown_db_type_and_missing_connection(db_contract: MakeContract) -> None:
    with pytest.raises(ContractError, match=r"unknown db_type 'postgress'.*did you mean 'postgres'"):
        database_url(db_contract({"db_type": "postgress", "host": "h"}))
    with pytest.raises(ContractError, match="needs either 'url'"):
        database_url(db_contract({"host": "h"}))


# ---------------------------------------------------------------------------------- options


def test_dataset_options(db_contract: MakeContract) -> None:
    contract = db_contract({"url": "sqlite://", "poll_interval": "PT30S"}, {
        "path": "sales.orders", "fetch_size": 250,
        "incremental": {"mode": "timestamp+incrementing", "timestamp_column": "updated_at",
                        "incrementing_column": "id", "timestamp_delay": "PT5S"}})
    opts = dataset_options(contract, contract.datasets[0])
    assert (opts.schema, opts.table, opts.fetch_size, opts.poll_interval) == ("sales", "orders", 250, 30.0)
    assert opts.incremental.timestamp_delay == timedelta(seconds=5)
    assert opts.columns == ("id", "note", "updated_at")
    assert opts.key_columns == ("id",)  # the key 'order_id' is the column 'id' renamed


@pytest.mark.parametrize("incremental, where, message", [
    ({"mode": "changes"}, "incremental.mode", "expected one of bulk, incrementing"),
    ({"mode": "timestamp"}, "incremental.timestamp_column", "needs timestamp_column"),
    ({"mode": "timestamp+incrementing", "timestamp_column": "t"}, "incremental.incrementing_column", "needs"),
    ({"mode": "incrementing", "incrementing_column": "id", "timestamp_delay": "5s"}, "incremental.timestamp_delay",
     "ISO-8601 duration"),
    ({"mode": "bulk", "timestamp_colum": "t"}, "incremental.timestamp_colum", "did you mean 'timestamp_column'"),
])
def test_bad_incremental_settings_name_the_key(db_contract: MakeContract, incremental: dict[str, Any], where: str,
                                               message: str) -> None:
    contract = db_contract({"url": "sqlite://"}, {"incremental": incremental})
    with pytest.raises(ContractError) as err:
        dataset_options(contract, contract.datasets[0])
    assert err.value.json_path == f"$.dataset_config[0].source.{where}"
    assert message in err.value.message


@pytest.mark.parametrize("path", ["a.b.c", "", ".orders", "orders."])
def test_bad_table_paths(db_contract: MakeContract, path: str) -> None:
    contract = db_contract({"url": "sqlite://"}, {"path": path})
    with pytest.raises(ContractError, match="expected a table name or schema.table"):
        dataset_options(contract, contract.datasets[0])


# ---------------------------------------------------------------------------------- JSON


def test_json_conversion_of_column_values() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 6000)
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    row = (1, when, when.replace(tzinfo=timezone.utc), date(2025, 1, 2), time(3, 4, 5), Decimal("12345678901234567890.10"),
           b"\x00\xffbin", bytearray(b"ab"), memoryview(b"mv"), uid, timedelta(hours=1, seconds=2), None, True, 2.5,
           {"nested": [Decimal("1.5"), date(2025, 1, 1)]}, 2**63 - 1)
    keys = [f"c{i}" for i in range(len(row))]
    expected = {
        "c0": 1, "c1": "2025-01-02T03:04:05.006000", "c2": "2025-01-02T03:04:05.006000+00:00",
        "c3": "2025-01-02", "c4": "03:04:05", "c5": "12345678901234567890.10",
        "c6": base64.b64encode(b"\x00\xffbin").decode(), "c7": "YWI=", "c8": "bXY=",
        "c9": "12345678-1234-5678-1234-567812345678", "c10": "PT1H2S", "c11": None, "c12": True, "c13": 2.5,
        "c14": {"nested": ["1.5", "2025-01-01"]}, "c15": 2**63 - 1,
    }
    assert row_dict(keys, row) == expected
    assert json.loads(encode_row(keys, row)) == expected  # the fast path writes the same JSON


def test_values_without_a_json_form_raise() -> None:
    with pytest.raises(TypeError):
        encode_row(["x"], [object()])
    with pytest.raises(TypeError):
        encode_row(["x"], [2**70])  # beyond 64 bits: the poller sends such a row to the DLQ
    assert json_value(object) is object


# ---------------------------------------------------------------------------------- cursor


def test_timestamps_keep_microseconds_and_round_trip() -> None:
    assert ts_text(datetime(2025, 1, 1, 12)) == "2025-01-01T12:00:00.000000"
    aware = datetime(2025, 1, 1, 12, 0, 0, 5, tzinfo=timezone.utc)
    assert ts_text(aware) == "2025-01-01T12:00:00.000005+00:00" and parse_ts(ts_text(aware)) == aware
    assert ts_text(date(2025, 1, 1)) == "2025-01-01" and parse_ts("2025-01-01") == date(2025, 1, 1)
    assert ts_text("2025-01-01 12:00:00") == "2025-01-01T12:00:00.000000"  # text from a driver


def test_cursor_round_trip_and_mode_change() -> None:
    cursor = Cursor("timestamp+incrementing", ts="2025-01-01T12:00:00.000000", id=42)
    doc = json.loads(json.dumps(cursor.to_json()))
    assert doc == {"mode": "timestamp+incrementing", "ts": "2025-01-01T12:00:00.000000", "id": 42}
    assert Cursor.from_json(doc, "timestamp+incrementing", "src") == cursor
    assert Cursor.from_json(None, "bulk", "src") == Cursor("bulk")
    bulk = Cursor("bulk", bulk_pass=3, bulk_row=10)
    assert Cursor.from_json(bulk.to_json(), "bulk", "src") == bulk
    with pytest.raises(ConfigError, match="holds a 'timestamp\\+incrementing' cursor but the contract now says"):
        Cursor.from_json(doc, "incrementing", "src")
    with pytest.raises(ConfigError, match="unreadable"):
        Cursor.from_json({"mode": "incrementing", "id": "x"}, "incrementing", "src")


def test_positions_are_deterministic_per_row_version() -> None:
    assert position("incrementing", None, 7) == "7"
    assert position("timestamp+incrementing", "2025-01-01T00:00:00.000000", 7) == "2025-01-01T00:00:00.000000|7"
    assert position("timestamp", "2025-01-01T00:00:00.000000", "[7]") == "2025-01-01T00:00:00.000000|[7]"
    assert position("bulk", None, 12, bulk_pass=2) == "bulk2:12"


def test_missing_driver_and_unknown_dialect_say_what_to_do(db_contract: MakeContract) -> None:
    if importlib.util.find_spec("pyodbc") is None:  # not a dependency: SQL Server is documented, not tested
        with pytest.raises(ConfigError, match="pip install pyodbc"):
            build_database_sources(db_contract({"url": "mssql+pyodbc://u:pw@h/db?driver=X"}), Settings())
    with pytest.raises(ConfigError, match="SQLAlchemy has no dialect 'foo'"):
        build_database_sources(db_contract({"url": "foo://h/db"}), Settings())

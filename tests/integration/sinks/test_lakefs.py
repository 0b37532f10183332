"""The lake filesystems against real servers: S3 (moto), WebHDFS (tests/webhdfs_server.py), and
a local lake read back with DuckDB as analysts do."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from atlas_stream.devbroker import stop_process
from atlas_stream.errors import LakeUnavailable
from atlas_stream.sinks.lakefs import Lake, open_lake

from ..lake_fixtures import MotoS3, TcpProxy, WebHdfsServer, port_open

TABLE = pa.table({"id": pa.array(range(2000), pa.int64()), "name": [f"row-{i}" for i in range(2000)]})
DAY = "events/tier=gold/ingest_date=2026-01-02"


@pytest.fixture
def lake(remote_lake: tuple[str, str | None]) -> Lake:
    uri, endpoint = remote_lake
    return open_lake(uri, s3_endpoint=endpoint)


def local_parquet(tmp_path: Path, name: str = "staged.parquet", table: pa.Table = TABLE) -> Path:
    path = tmp_path / name
    pq.write_table(table, path, row_group_size=500)
    return path


def test_every_operation(lake: Lake, tmp_path: Path) -> None:
    lake.check()
    assert lake.staged
    assert lake.list_files("events") == []

    # Written in place through the filesystem's output stream...
    with lake.open_output(f"{DAY}/a.parquet") as out:
        with pq.ParquetWriter(out, TABLE.schema) as writer:
            writer.write_table(TABLE, row_group_size=700)
    # ... and published from a finished local file.
    lake.publish(local_parquet(tmp_path), f"{DAY}/b.parquet")

    files = lake.list_files("events")
    assert [f.path for f in files] == [f"{DAY}/a.parquet", f"{DAY}/b.parquet"]  # no temporary file left
    assert all(f.size > 1000 for f in files)
    assert lake.read_parquet_metadata(f"{DAY}/a.parquet").num_rows == 2000
    assert lake.read_parquet_metadata(f"{DAY}/b.parquet").num_row_groups == 4

    with pytest.raises(FileExistsError):
        lake.publish(local_parquet(tmp_path, "other.parquet", TABLE.slice(0, 5)), f"{DAY}/a.parquet")
    with pytest.raises(FileExistsError):
        lake.move(f"{DAY}/b.parquet", f"{DAY}/a.parquet")
    assert lake.read_parquet_metadata(f"{DAY}/a.parquet").num_rows == 2000  # untouched

    lake.move(f"{DAY}/b.parquet", "events/tier=gold/ingest_date=2026-01-03/b.parquet")
    assert not lake.exists(f"{DAY}/b.parquet")
    assert lake.exists("events/tier=gold/ingest_date=2026-01-03/b.parquet")
    with pytest.raises(FileNotFoundError):
        lake.read_parquet_metadata(f"{DAY}/b.parquet")

    lake.delete(f"{DAY}/a.parquet")
    lake.delete(f"{DAY}/a.parquet")  # missing is fine
    assert [f.path for f in lake.list_files("")] == ["events/tier=gold/ingest_date=2026-01-03/b.parquet"]
    table = pq.read_table(lake.full("events/tier=gold/ingest_date=2026-01-03/b.parquet"), filesystem=lake.fs)
    assert table.equals(TABLE)


# --- WebHDFS: the protocol the server speaks, and what the Lake does with its answers


def test_webhdfs_create_redirects_to_the_datanode_and_refuses_to_overwrite(webhdfs_server: WebHdfsServer) -> None:
    url = f"{webhdfs_server.url}/lake/f.bin"
    first = requests.put(url, params={"op": "CREATE", "user.name": "atlas"}, allow_redirects=False)
    assert first.status_code == 307
    location = urlparse(first.headers["Location"])
    assert location.port == webhdfs_server.datanode_port and "op=CREATE" in location.query
    created = requests.put(first.headers["Location"], data=b"0123456789")
    assert created.status_code == 201 and created.headers["Location"].startswith("hdfs://")

    again = requests.put(url, params={"op": "CREATE"})  # requests follows the 307 itself
    assert again.status_code == 403
    assert again.json()["RemoteException"]["exception"] == "FileAlreadyExistsException"
    assert (webhdfs_server.root / "lake/f.bin").read_bytes() == b"0123456789"
    replaced = requests.put(url, params={"op": "CREATE", "overwrite": "true"}, data=b"abc")
    assert replaced.status_code == 201

    appended = requests.post(url, params={"op": "APPEND"}, data=b"def")
    assert appended.status_code == 200 and appended.history[0].status_code == 307
    read = requests.get(url, params={"op": "OPEN", "offset": 2, "length": 3})
    assert read.history[0].status_code == 307 and read.content == b"cde"
    noredirect = requests.get(url, params={"op": "OPEN", "noredirect": "true"}).json()
    assert requests.get(noredirect["Location"]).content == b"abcdef"


def test_webhdfs_remote_exceptions_and_boolean_answers(webhdfs_server: WebHdfsServer) -> None:
    base = webhdfs_server.url
    missing = requests.get(f"{base}/lake/missing", params={"op": "GETFILESTATUS"})
    assert missing.status_code == 404
    assert missing.json() == {"RemoteException": {
        "exception": "FileNotFoundException", "javaClassName": "java.io.FileNotFoundException",
        "message": "File does not exist: /lake/missing"}}
    bad_op = requests.get(f"{base}/lake", params={"op": "NOPE"})
    assert bad_op.status_code == 400 and bad_op.json()["RemoteException"]["exception"] == "IllegalArgumentException"

    assert requests.put(f"{base}/lake/d", params={"op": "MKDIRS"}).json() == {"boolean": True}
    for name in ("a", "b"):
        requests.put(f"{base}/lake/d/{name}", params={"op": "CREATE"}, data=name.encode()).raise_for_status()
    listing = requests.get(f"{base}/lake/d", params={"op": "LISTSTATUS"}).json()["FileStatuses"]["FileStatus"]
    assert [(s["pathSuffix"], s["type"], s["length"]) for s in listing] == [("a", "FILE", 1), ("b", "FILE", 1)]

    rename = requests.put(f"{base}/lake/d/a", params={"op": "RENAME", "destination": "/lake/d/b"})
    assert rename.status_code == 200 and rename.json() == {"boolean": False}
    assert requests.put(f"{base}/lake/d/zz", params={"op": "RENAME", "destination": "/lake/d/c"}).json() == {"boolean": False}
    assert requests.put(f"{base}/lake/d/a", params={"op": "RENAME", "destination": "/lake/d/c"}).json() == {"boolean": True}

    not_empty = requests.delete(f"{base}/lake/d", params={"op": "DELETE"})
    assert not_empty.status_code == 403
    assert not_empty.json()["RemoteException"]["exception"] == "PathIsNotEmptyDirectoryException"
    assert requests.delete(f"{base}/lake/nothing", params={"op": "DELETE"}).json() == {"boolean": False}
    assert requests.delete(f"{base}/lake/d", params={"op": "DELETE", "recursive": "true"}).json() == {"boolean": True}


def test_webhdfs_move_reads_the_rename_answer(webhdfs_server: WebHdfsServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    lake = open_lake(webhdfs_server.uri)
    lake.publish(local_parquet(tmp_path), "d/a.parquet")
    lake.publish(local_parquet(tmp_path, "small.parquet", TABLE.slice(0, 3)), "d/b.parquet")
    # fsspec's mv() ignores RENAME's {"boolean": false}: nothing moved, no error.
    lake.webhdfs.mv("/lake/d/a.parquet", "/lake/d/b.parquet")
    assert lake.exists("d/a.parquet")
    # Lake.move reads it, even when the destination appears after its own look (a race).
    real_exists, looks = lake._exists, []

    def appears_after_the_first_look(path: str) -> bool:
        looks.append(path)
        return len(looks) > 1 and real_exists(path)

    monkeypatch.setattr(lake, "_exists", appears_after_the_first_look)
    with pytest.raises(FileExistsError):
        lake.move("d/a.parquet", "d/b.parquet")
    assert lake.read_parquet_metadata("d/b.parquet").num_rows == 3
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError):
        lake.move("d/missing.parquet", "d/c.parquet")


def test_webhdfs_down_is_lake_unavailable(webhdfs_server: WebHdfsServer, tmp_path: Path) -> None:
    lake = open_lake(webhdfs_server.uri)
    lake.check()
    stop_process(webhdfs_server.process)
    for op in (lake.check, lambda: lake.list_files(""), lambda: lake.publish(local_parquet(tmp_path), "x.parquet")):
        with pytest.raises(LakeUnavailable) as err:
            op()
        assert webhdfs_server.uri in str(err.value) and "ATLAS_LAKE_URI" in str(err.value)


# --- S3


def test_s3_missing_bucket_and_endpoint_down(moto_s3: MotoS3) -> None:
    with pytest.raises(LakeUnavailable, match="bucket 'no-such-bucket' does not exist"):
        open_lake("s3://no-such-bucket/lake", s3_endpoint=moto_s3.endpoint).check()
    down = open_lake(moto_s3.lake_uri, s3_endpoint="http://127.0.0.1:9")
    with pytest.raises(LakeUnavailable, match="is the S3 endpoint up.*ATLAS_S3_ENDPOINT"):
        down.list_files("")


def test_s3_through_a_paused_proxy(moto_s3: MotoS3, tmp_path: Path) -> None:
    target = urlparse(moto_s3.endpoint)
    assert target.hostname and target.port
    with TcpProxy(target.hostname, target.port) as proxy:
        lake = open_lake(moto_s3.lake_uri, s3_endpoint=proxy.url)
        lake.publish(local_parquet(tmp_path), f"{DAY}/before.parquet")

        proxy.pause()
        started = time.monotonic()
        for op in (lake.check, lambda: lake.list_files("events"),
                   lambda: lake.publish(local_parquet(tmp_path), f"{DAY}/during.parquet")):
            with pytest.raises(LakeUnavailable) as err:
                op()
            assert moto_s3.lake_uri in str(err.value) and "AWS_*" in str(err.value)
        assert time.monotonic() - started < 60

        proxy.resume()
        lake.publish(local_parquet(tmp_path), f"{DAY}/during.parquet")
        assert [f.path for f in lake.list_files("events")] == [f"{DAY}/before.parquet", f"{DAY}/during.parquet"]


# --- Local lake, read as analysts do


def test_duckdb_reads_the_local_lake(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.check()
    lake.publish(local_parquet(tmp_path), f"{DAY}/events+0+1.parquet")
    with lake.open_output(f"{DAY}/_tmp.events+0+2.parquet.tmp") as out:  # a file being written
        out.write(b"not parquet yet")
    rows = duckdb.sql(
        f"SELECT tier, CAST(ingest_date AS VARCHAR), count(*), max(id) "
        f"FROM read_parquet('{lake.full('events')}/*/*/*.parquet', hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    assert rows == [("gold", "2026-01-02", 2000, 1999)]


def test_tcp_proxy_pause_closes_open_connections_and_resume_keeps_the_port(webhdfs_server: WebHdfsServer) -> None:
    target = urlparse(webhdfs_server.url)
    assert target.hostname and target.port
    with TcpProxy(target.hostname, target.port) as proxy, requests.Session() as session:
        url = f"{proxy.url}/webhdfs/v1/?op=GETFILESTATUS"
        assert session.get(url, timeout=5).json()["FileStatus"]["type"] == "DIRECTORY"  # a kept-alive connection
        port = proxy.port
        proxy.pause()
        assert not port_open("127.0.0.1", port)
        with pytest.raises(requests.ConnectionError):
            session.get(url, timeout=5)
        proxy.resume()
        assert proxy.port == port and session.get(url, timeout=5).status_code == 200

"""The local lake (every Lake operation), error mapping, and lake URI parsing for every scheme."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import requests

from atlas_stream.errors import ConfigError, LakeUnavailable, RetriableError
from atlas_stream.sinks.lakefs import Lake, open_lake

TABLE = pa.table({"id": list(range(100)), "name": [f"n{i}" for i in range(100)]})


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return open_lake((tmp_path / "lake").as_uri())


def staged(tmp_path: Path, rows: int = 100) -> Path:
    path = tmp_path / f"staged-{rows}.parquet"
    pq.write_table(TABLE.slice(0, rows), path)
    return path


def test_local_lake_operations(lake: Lake, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    assert (lake.scheme, lake.root, lake.staged) == ("file", str(root), False)
    assert lake.full("a/b.parquet") == f"{root}/a/b.parquet" and lake.full("") == str(root)
    assert lake.list_files("nothing/here") == []
    lake.check()
    assert root.is_dir()

    with lake.open_output("d/x=1/a.parquet") as out:  # parent folders are created
        with pq.ParquetWriter(out, TABLE.schema) as writer:
            writer.write_table(TABLE)
    lake.publish(staged(tmp_path, 10), "d/x=2/b.parquet")
    entries = lake.list_files("d")
    assert [e.path for e in entries] == ["d/x=1/a.parquet", "d/x=2/b.parquet"]
    assert entries[1].size == (root / "d/x=2/b.parquet").stat().st_size
    assert sorted(p.name for p in root.rglob("*")) == ["a.parquet", "b.parquet", "d", "x=1", "x=2"]  # no temp left
    assert lake.exists("d/x=1/a.parquet") and lake.exists("d") and not lake.exists("d/c.parquet")
    assert lake.read_parquet_metadata("d/x=2/b.parquet").num_rows == 10

    lake.move("d/x=1/a.parquet", "d/x=3/a.parquet")
    assert not lake.exists("d/x=1/a.parquet") and lake.read_parquet_metadata("d/x=3/a.parquet").num_rows == 100
    lake.delete("d/x=3/a.parquet")
    lake.delete("d/x=3/a.parquet")  # missing is fine
    assert [e.path for e in lake.list_files("")] == ["d/x=2/b.parquet"]
    with pytest.raises(FileNotFoundError):
        lake.read_parquet_metadata("d/x=3/a.parquet")
    with pytest.raises(FileNotFoundError):
        lake.move("d/x=3/a.parquet", "d/x=4/a.parquet")


def test_move_and_publish_refuse_to_overwrite(lake: Lake, tmp_path: Path) -> None:
    lake.publish(staged(tmp_path, 10), "d/final.parquet")
    lake.publish(staged(tmp_path, 20), "d/_tmp.other.tmp")
    with pytest.raises(FileExistsError):
        lake.publish(staged(tmp_path, 30), "d/final.parquet")
    with pytest.raises(FileExistsError):
        lake.move("d/_tmp.other.tmp", "d/final.parquet")
    assert lake.read_parquet_metadata("d/final.parquet").num_rows == 10
    assert lake.exists("d/_tmp.other.tmp")  # the source stays where it was
    assert [e.path for e in lake.list_files("d")] == ["d/_tmp.other.tmp", "d/final.parquet"]


def test_move_without_hard_links_still_refuses_to_overwrite(lake: Lake, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted")  # what link() says on filesystems without links

    monkeypatch.setattr(os, "link", no_links)
    lake.publish(staged(tmp_path, 10), "a.parquet")
    lake.publish(staged(tmp_path, 20), "b.parquet")
    with pytest.raises(FileExistsError):
        lake.move("a.parquet", "b.parquet")
    lake.move("a.parquet", "c.parquet")
    assert [e.path for e in lake.list_files("")] == ["b.parquet", "c.parquet"]


def test_publish_of_a_missing_local_file(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        lake.publish(tmp_path / "gone.parquet", "a.parquet")
    assert lake.list_files("") == []


def test_filesystem_errors_become_lake_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    uri = (tmp_path / "a-file" / "lake").as_uri()
    lake = open_lake(uri)
    for op in (lake.check, lambda: lake.open_output("x.parquet"), lambda: lake.publish(staged(tmp_path), "x.parquet")):
        with pytest.raises(LakeUnavailable) as err:
            op()
        assert isinstance(err.value, RetriableError)
        assert uri in str(err.value) and "ATLAS_LAKE_URI" in str(err.value)
        assert isinstance(err.value.__cause__, NotADirectoryError)


class _Unreachable(pafs.FSSpecHandler):
    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        raise requests.ConnectionError("Max retries exceeded (Connection refused)")

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        raise RuntimeError("java.io.IOException: namenode is in safe mode")


def test_network_errors_through_pyarrow_become_lake_unavailable() -> None:
    lake = Lake("webhdfs://nn:9870/lake", "webhdfs", pafs.PyFileSystem(_Unreachable(fsspec.filesystem("memory"))), "/lake")
    with pytest.raises(LakeUnavailable, match=r"webhdfs://nn:9870/lake: checking /lake/a failed \(ConnectionError"):
        lake.exists("a")
    with pytest.raises(LakeUnavailable, match="safe mode"):
        lake.list_files("")


# --- URI parsing


def test_bare_paths_and_file_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bare = open_lake("relative/lake")
    assert type(bare).__name__ == "LocalLake" and bare.root == str(tmp_path / "relative/lake")
    assert bare.uri == (tmp_path / "relative/lake").as_uri()
    assert open_lake("file:///srv/lake/").root == "/srv/lake"
    assert open_lake("file:///srv/my%20lake").root == "/srv/my lake"
    with pytest.raises(ConfigError, match="file:///abs/path"):
        open_lake("file://otherhost/srv/lake")


def test_s3_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    lake = open_lake("s3://bucket/some/prefix/", s3_endpoint="http://127.0.0.1:9000")
    assert (lake.scheme, lake.root, lake.staged) == ("s3", "bucket/some/prefix", True)
    assert lake.full("t/a.parquet") == "bucket/some/prefix/t/a.parquet"
    options = lake.fs.__reduce__()[1][0]
    assert (options["scheme"], options["endpoint_override"]) == ("http", "127.0.0.1:9000")
    assert open_lake("s3://bucket").root == "bucket"
    assert open_lake("s3://bucket", s3_endpoint="https://minio.example:9000").fs.__reduce__()[1][0]["scheme"] == "https"
    for bad in ("127.0.0.1:9000", "ftp://host", "http://host/path"):
        with pytest.raises(ConfigError, match="ATLAS_S3_ENDPOINT"):
            open_lake("s3://bucket/p", s3_endpoint=bad)
    for bad in ("s3:///prefix", "s3://KEY:SECRET@bucket/p"):
        with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
            open_lake(bad)


def test_hdfs_without_a_hadoop_client_says_what_to_install() -> None:
    try:
        open_lake("hdfs://namenode:8020/lake")
    except ConfigError as exc:
        message = str(exc)
    except LakeUnavailable:
        pytest.skip("a Hadoop client is installed here")
    else:
        pytest.skip("a Hadoop client is installed and a namenode answered")
    for needed in ("hdfs://namenode:8020/lake", "JAVA_HOME", "HADOOP_HOME", "hadoop classpath --glob",
                   "ARROW_LIBHDFS_DIR", "webhdfs://"):
        assert needed in message
    assert len(message.splitlines()) == 1  # not pyarrow's hundred dlopen lines


def test_webhdfs_uris() -> None:
    lake = open_lake("webhdfs://etl@namenode.example:9871/data/lake")
    assert (type(lake).__name__, lake.scheme, lake.root, lake.staged) == ("WebHdfsLake", "webhdfs", "/data/lake", True)
    client = lake.webhdfs  # type: ignore[attr-defined]
    assert client.url == "http://namenode.example:9871/webhdfs/v1" and client.pars == {"user.name": "etl"}
    assert isinstance(lake.fs, pafs.PyFileSystem)
    secure = open_lake("swebhdfs://namenode.example/lake")
    assert secure.webhdfs.url == "https://namenode.example:9870/webhdfs/v1"  # type: ignore[attr-defined]
    assert open_lake("webhdfs://nn:9870").root == "/"
    assert open_lake("webhdfs://nn:9870").full("a/b") == "/a/b"


def test_unknown_scheme_names_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match=r"'gs'.*file://, s3://, hdfs://, webhdfs://, swebhdfs://"):
        open_lake("gs://bucket/lake")

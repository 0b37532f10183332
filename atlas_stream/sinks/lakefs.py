"""The lake's filesystem, chosen by the URI scheme: file:// (default), s3://, hdfs://, webhdfs://.

One error vocabulary for all: LakeUnavailable (retry later) for whatever the filesystem or the
network raised, FileExistsError when a move or publish would overwrite, FileNotFoundError when
the file to read or move is missing. Methods block: run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar
from urllib.parse import ParseResult, unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import LakeUnavailable, SettingsError

__all__ = ["FileEntry", "Lake", "LakeConfig", "LakeUnavailable", "SCHEMES", "TMP_PREFIX", "TMP_SUFFIX", "open_lake", "temp_name"]

SCHEMES = ("file", "s3", "hdfs", "webhdfs", "swebhdfs")
#: A file being published is uploaded under this prefix and suffix first, in the same folder
#: (readers skip names starting with ``_``; recovery deletes leftovers).
TMP_PREFIX, TMP_SUFFIX = "_tmp.", ".tmp"
_COPY_CHUNK = 8 * 1024 * 1024
T = TypeVar("T")


def temp_name(base: str) -> str:
    """The temporary name a file called ``base`` is written under, in the same folder, until it is
    committed: the one convention of the sinks, the publish step and the batch writer."""
    return f"{TMP_PREFIX}{base}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"


@dataclass(frozen=True)
class FileEntry:
    """A file under the lake root: its '/'-separated path relative to the root, and its size."""

    path: str
    size: int


class Lake:
    """A lake root on any ``pyarrow.fs.FileSystem``; subclasses fix what a scheme lacks. ``staged``:
    the sink writes temporary files on local disk and publishes them when committed, instead of
    writing inside the lake and calling ``move``."""

    staged: ClassVar[bool] = True
    hint: ClassVar[str] = "check ATLAS_LAKE_URI"

    def __init__(self, uri: str, scheme: str, fs: pafs.FileSystem, root: str) -> None:
        self.uri, self.scheme, self.fs, self.root = uri, scheme, fs, root

    def full(self, rel: str) -> str:
        """The path inside ``fs`` of ``rel`` (relative to the lake root)."""
        rel = rel.strip("/")
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    def _call(self, what: str, op: Callable[[], T]) -> T:
        try:
            return op()
        except (FileExistsError, FileNotFoundError):
            raise
        # OSError covers ArrowIOError, requests' and socket errors; fsspec's WebHDFS raises
        # RuntimeError for a RemoteException it does not map (e.g. an HDFS IOException).
        except (OSError, RuntimeError) as exc:
            detail = (str(exc).strip().splitlines() or [""])[0][:300]
            raise LakeUnavailable(f"lake {self.uri}: {what} failed ({type(exc).__name__}: {detail}); "
                                  f"{self.hint}") from exc

    def _mkdirs(self, path: str) -> None:
        self._call(f"creating folder {path}", lambda: self.fs.create_dir(path, recursive=True))

    def _parent(self, path: str) -> str:
        return path.rsplit("/", 1)[0] or "/"

    def list_files(self, rel_dir: str) -> list[FileEntry]:
        """Every file under ``rel_dir``, recursively, sorted by path; [] if the folder is missing."""
        base = self.full(rel_dir)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        infos = self._call(f"listing {base}", lambda: self.fs.get_file_info(selector))
        prefix = self.root.rstrip("/") + "/"
        out = [FileEntry(i.path.removeprefix(prefix), int(i.size or 0))
               for i in infos if i.type == pafs.FileType.File]
        return sorted(out, key=lambda e: e.path)

    def exists(self, rel: str) -> bool:
        return self._exists(self.full(rel))

    def _exists(self, path: str) -> bool:
        info = self._call(f"checking {path}", lambda: self.fs.get_file_info(path))
        return bool(info.type != pafs.FileType.NotFound)

    def open_output(self, rel: str) -> Any:
        """A pyarrow output stream writing ``rel`` (replacing it); parent folders are created."""
        path = self.full(rel)
        self._mkdirs(self._parent(path))
        return self._call(f"opening {path} for writing", lambda: self.fs.open_output_stream(path))

    def move(self, src_rel: str, dst_rel: str) -> None:
        """Rename ``src_rel`` to ``dst_rel``; FileExistsError if ``dst_rel`` exists."""
        src, dst = self.full(src_rel), self.full(dst_rel)
        self._mkdirs(self._parent(dst))
        self._rename_new(src, dst)

    def _rename_new(self, src: str, dst: str) -> None:
        # pyarrow's move replaces an existing file (S3 and HDFS alike), so look first. The sink
        # has one writer per file name, so nobody else can create ``dst`` in between.
        if self._exists(dst):
            raise FileExistsError(f"{self.uri}: {dst} already exists")
        self._call(f"renaming {src} to {dst}", lambda: self.fs.move(src, dst))

    def publish(self, local_path: Path, rel: str) -> None:
        """Upload a finished local file so that ``rel`` appears complete or not at all: upload to a
        hidden temporary name in the same folder, then rename. FileExistsError if ``rel`` exists."""
        dst = self.full(rel)
        if self.exists(rel):
            raise FileExistsError(f"{self.uri}: {dst} already exists")
        folder, base = self._parent(dst), dst.rsplit("/", 1)[-1]
        tmp = f"{folder.rstrip('/')}/{temp_name(base)}"
        self._mkdirs(folder)
        try:
            self._upload(local_path, tmp)
            self._rename_new(tmp, dst)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: recovery deletes leftover _tmp. files
                self.fs.delete_file(tmp)
            raise

    def _upload(self, local_path: Path, path: str) -> None:
        def upload() -> None:
            with open(local_path, "rb") as src, self.fs.open_output_stream(path) as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)

        open(local_path, "rb").close()  # a missing local file is FileNotFoundError, not the lake's
        self._call(f"uploading {local_path} to {path}", upload)

    def delete(self, rel: str) -> None:
        """Delete the file ``rel``; a missing file is fine."""
        path = self.full(rel)
        with contextlib.suppress(FileNotFoundError):
            self._call(f"deleting {path}", lambda: self.fs.delete_file(path))

    def read_parquet_metadata(self, rel: str) -> pq.FileMetaData:
        """The Parquet footer of ``rel`` (FileNotFoundError if it is missing)."""
        path = self.full(rel)

        def read() -> pq.FileMetaData:
            with self.fs.open_input_file(path) as f:
                return pq.read_metadata(f)

        return self._call(f"reading the Parquet footer of {path}", read)

    def check(self) -> None:
        """A cheap call proving the lake answers: creates the root folder if it is missing."""
        self._mkdirs(self.root)


class LocalLake(Lake):
    """file:// — the sink writes temporary files inside the lake and renames them (atomic)."""

    staged = False
    hint = "is the folder on a mounted, writable disk? check ATLAS_LAKE_URI"

    def _rename_new(self, src: str, dst: str) -> None:
        # link() fails atomically when dst exists, where rename() would replace it.
        try:
            os.link(src, dst)
        except (FileExistsError, FileNotFoundError):
            raise
        except OSError:  # no hard links here (some network or FUSE filesystems)
            super()._rename_new(src, dst)
            return
        self._call(f"removing {src}", lambda: os.unlink(src))


class S3Lake(Lake):
    """s3:// — an object appears only when its upload completes: publish uploads straight to it."""

    hint = "is the S3 endpoint up? check ATLAS_LAKE_URI / ATLAS_S3_ENDPOINT / AWS_* credentials"

    def _mkdirs(self, path: str) -> None:
        pass  # no folders, and no directory markers

    def publish(self, local_path: Path, rel: str) -> None:
        dst = self.full(rel)
        if self.exists(rel):
            raise FileExistsError(f"{self.uri}: {dst} already exists")
        try:
            self._upload(local_path, dst)
        except LakeUnavailable:
            # pyarrow completes an upload when its stream closes, even after a failed write:
            # never leave a truncated object under the committed name.
            with contextlib.suppress(Exception):
                info = self.fs.get_file_info(dst)
                if info.type == pafs.FileType.File and info.size != local_path.stat().st_size:
                    self.fs.delete_file(dst)
            raise

    def check(self) -> None:
        bucket = self.root.split("/", 1)[0]
        info = self._call(f"looking up bucket {bucket}", lambda: self.fs.get_file_info(bucket))
        if info.type != pafs.FileType.Directory:
            raise LakeUnavailable(f"lake {self.uri}: bucket {bucket!r} does not exist: create it, or {self.hint}")


class HdfsLake(Lake):
    """hdfs:// through libhdfs (a Hadoop client and Java installed)."""

    hint = ("is the HDFS namenode up? check ATLAS_LAKE_URI and the Hadoop client "
            "(HADOOP_HOME, HADOOP_CONF_DIR, JAVA_HOME, CLASSPATH)")


class _StrictFSSpecHandler(pafs.FSSpecHandler):
    """pyarrow's FSSpecHandler, minus "not found" for a server that does not answer: fsspec's
    exists(), isdir() and isfile() swallow every error and walk() skips folders it cannot list,
    so a namenode that is down would look like an empty lake."""

    def _kind(self, path: str) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            return str(self.fs.info(path)["type"])
        return None

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        base, kind = selector.base_dir, self._kind(selector.base_dir)
        if kind is None and selector.allow_not_found:
            return []
        if kind != "directory":
            raise (FileNotFoundError if kind is None else NotADirectoryError)(base)
        found = self.fs.find(base, maxdepth=None if selector.recursive else 1, withdirs=True, detail=True,
                             on_error="raise")
        return [self._create_file_info(p, i) for p, i in found.items() if p.strip("/") != base.strip("/")]

    def delete_file(self, path: str) -> None:
        if self._kind(path) is None:
            raise FileNotFoundError(path)
        self.fs.rm(path)

    def open_input_file(self, path: str) -> Any:
        if self._kind(path) != "file":
            raise FileNotFoundError(path)
        return pa.PythonFile(self.fs.open(path, mode="rb"), mode="r")

    open_input_stream = open_input_file


class WebHdfsLake(Lake):
    """webhdfs:// and swebhdfs:// through fsspec's WebHDFS client (pure Python, REST)."""

    hint = "is the WebHDFS namenode (and its datanodes) up? check ATLAS_LAKE_URI (webhdfs://[user@]namenode:9870/path)"

    def __init__(self, uri: str, scheme: str, webhdfs: Any, root: str) -> None:
        super().__init__(uri, scheme, pafs.PyFileSystem(_StrictFSSpecHandler(webhdfs)), root)
        self.webhdfs = webhdfs

    def _rename_new(self, src: str, dst: str) -> None:
        # HDFS's RENAME refuses an existing destination file atomically but answers
        # {"boolean": false} instead of an error, which fsspec's mv() ignores: call it directly.
        # An existing destination *folder* would take the file inside it, hence the look first.
        renamed = False
        if not self._exists(dst):
            reply = self._call(f"renaming {src} to {dst}", lambda: self.webhdfs._call(
                "RENAME", method="put", path=src, destination=dst))
            renamed = bool(reply.json().get("boolean"))
        if renamed:
            return
        if self._exists(dst):
            raise FileExistsError(f"{self.uri}: {dst} already exists")
        if not self._exists(src):
            raise FileNotFoundError(f"{self.uri}: {src} does not exist")
        raise LakeUnavailable(f"lake {self.uri}: the namenode refused to rename {src} to {dst}; {self.hint}")


def _open_local(uri: str, url: ParseResult, s3: dict[str, str | None]) -> Lake:
    if url.netloc not in ("", "localhost"):
        raise SettingsError(f"ATLAS_LAKE_URI={uri}: a file:// URI names a local folder (file:///abs/path)")
    return LocalLake(uri, "file", pafs.LocalFileSystem(), "/" + unquote(url.path).strip("/"))


def _open_s3(uri: str, url: ParseResult, s3: dict[str, str | None]) -> Lake:
    if not url.hostname or url.username or url.password:
        raise SettingsError(f"ATLAS_LAKE_URI={uri}: use s3://bucket/prefix; credentials come from the "
                            "AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...)")
    options: dict[str, Any] = {}
    s3_endpoint = s3.get("endpoint")
    if s3.get("region"):
        options["region"] = s3["region"]
    if s3.get("ca_file"):
        ca_file = str(s3["ca_file"])
        if not Path(ca_file).is_file():
            raise SettingsError(f"ATLAS_S3_CA_FILE={ca_file}: no such file (a PEM bundle of the CAs to trust)")
        options["tls_ca_file_path"] = ca_file
    if s3_endpoint:
        ep = urlparse(s3_endpoint)
        if ep.scheme not in ("http", "https") or not ep.netloc or ep.path.strip("/"):
            raise SettingsError(f"ATLAS_S3_ENDPOINT={s3_endpoint}: expected an http:// or https:// URL "
                                "such as http://127.0.0.1:9000")
        options.update(scheme=ep.scheme, endpoint_override=ep.netloc)
    # Credentials (and the region unless ATLAS_S3_REGION): the AWS SDK reads the standard AWS environment.
    return S3Lake(uri, "s3", pafs.S3FileSystem(**options), f"{url.netloc}/{unquote(url.path).strip('/')}".rstrip("/"))


def _open_hdfs(uri: str, url: ParseResult, s3: dict[str, str | None]) -> Lake:
    host = url.hostname or "default"  # "default": fs.defaultFS from the Hadoop configuration
    try:
        fs = pafs.HadoopFileSystem(host, url.port or (8020 if url.hostname else 0), user=url.username)
    except OSError as exc:
        first = (str(exc).splitlines() or [""])[0]
        if "libjvm" in first or "libhdfs" in first or "jni" in first.lower():
            raise SettingsError(
                f"ATLAS_LAKE_URI={uri}: hdfs:// needs a Hadoop client on this machine ({first}). Set "
                "JAVA_HOME, HADOOP_HOME, CLASSPATH=$(hadoop classpath --glob) and, if libhdfs.so is not "
                "under $HADOOP_HOME/lib/native, ARROW_LIBHDFS_DIR. Or use webhdfs://namenode:9870/path, "
                "which needs nothing installed") from exc
        raise LakeUnavailable(f"lake {uri}: cannot connect ({first}); {HdfsLake.hint}") from exc
    return HdfsLake(uri, "hdfs", fs, "/" + unquote(url.path).strip("/"))


def _open_webhdfs(uri: str, url: ParseResult, s3: dict[str, str | None]) -> Lake:
    try:
        import requests.adapters
        from fsspec.implementations.webhdfs import WebHDFS
    except ImportError as exc:  # both are in requirements.txt; say so if an install lacks them
        raise ImportError(f"webhdfs:// needs `pip install fsspec requests` ({exc})") from exc
    if not url.hostname:
        raise SettingsError(f"ATLAS_LAKE_URI={uri}: expected webhdfs://[user@]namenode:9870/path")
    client = WebHDFS(url.hostname, port=url.port or 9870, user=unquote(url.username) if url.username else None,
                     use_https=url.scheme == "swebhdfs")

    class _Timeouts(requests.adapters.HTTPAdapter):
        # fsspec sends requests without a timeout: a hung namenode would block the sink forever.
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = (10, 300)
            return super().send(request, *args, **kwargs)

    for prefix in ("http://", "https://"):
        client.session.mount(prefix, _Timeouts())
    return WebHdfsLake(uri, url.scheme, client, "/" + unquote(url.path).strip("/"))


_OPENERS: dict[str, Callable[[str, ParseResult, dict[str, str | None]], Lake]] = {
    "file": _open_local, "s3": _open_s3, "hdfs": _open_hdfs, "webhdfs": _open_webhdfs, "swebhdfs": _open_webhdfs,
}


def open_lake(uri: str, *, s3_endpoint: str | None = None, s3_region: str | None = None,
              s3_ca_file: str | None = None) -> Lake:
    """The Lake for ``uri`` (a bare path is a local folder). ``s3_endpoint`` (ATLAS_S3_ENDPOINT)
    overrides the S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO or moto; ``s3_region``
    (ATLAS_S3_REGION) and ``s3_ca_file`` (ATLAS_S3_CA_FILE, a PEM bundle that verifies the
    endpoint's TLS certificate) complete it.

    Raises SettingsError for a URI that cannot work here, LakeUnavailable if it cannot connect.
    """
    if "://" not in uri:
        uri = Path(uri).expanduser().resolve().as_uri()
    url = urlparse(uri)
    opener = _OPENERS.get(url.scheme.lower())
    if opener is None:
        raise SettingsError(f"ATLAS_LAKE_URI={uri}: unsupported scheme {url.scheme!r}; supported: "
                            + ", ".join(f"{s}://" for s in SCHEMES))
    return opener(uri, url, {"endpoint": s3_endpoint, "region": s3_region, "ca_file": s3_ca_file})


@dataclass(frozen=True)
class LakeConfig:
    """Where the lake is and how to reach it (ATLAS_LAKE_URI and the ATLAS_S3_* settings): small
    and picklable, so that Spark executors open the same lake as the driver."""

    uri: str
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "LakeConfig":
        return cls(settings.lake_uri, settings.s3_endpoint, settings.s3_region, settings.s3_ca_file)

    def open(self) -> Lake:
        return open_lake(self.uri, s3_endpoint=self.s3_endpoint, s3_region=self.s3_region, s3_ca_file=self.s3_ca_file)

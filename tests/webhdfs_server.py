"""A small WebHDFS REST server over a local folder, for tests (no HDFS can run here).

Follows https://hadoop.apache.org/docs/stable/hadoop-project-dist/hadoop-hdfs/WebHDFS.html for
the operations the lake uses: the "name node" port answers GETFILESTATUS, LISTSTATUS,
GETHOMEDIRECTORY, MKDIRS, RENAME and DELETE itself and answers CREATE, APPEND and OPEN with a
``307 Temporary Redirect`` to a "data node" port of the same process, which moves the bytes
(``noredirect=true`` gives the Location in a JSON body instead, as Hadoop 3 does). Errors are
``RemoteException`` JSON bodies with HDFS's status codes: IllegalArgumentException 400,
SecurityException 401, IOException (FileAlreadyExists, ParentNotDirectory, ...) 403,
FileNotFoundException 404. HDFS semantics kept on purpose: CREATE defaults to overwrite=false,
a file is visible (growing) while it is written, RENAME answers ``{"boolean": false}`` when the
source is missing or the destination exists (and moves into an existing directory), DELETE of a
missing path answers ``{"boolean": false}``.

    python tests/webhdfs_server.py --port 9870 --root /tmp/hdfs [--datanode-port 9864]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import stat
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

from aiohttp import web

PREFIX = "/webhdfs/v1"
BLOCK_SIZE = 134217728
GET_OPS = {"OPEN", "GETFILESTATUS", "LISTSTATUS", "GETHOMEDIRECTORY", "GETCONTENTSUMMARY"}
PUT_OPS = {"CREATE", "MKDIRS", "RENAME"}
POST_OPS = {"APPEND"}
DELETE_OPS = {"DELETE"}
JAVA_CLASS = {
    "IllegalArgumentException": ("java.lang.IllegalArgumentException", 400),
    "UnsupportedOperationException": ("java.lang.UnsupportedOperationException", 400),
    "SecurityException": ("java.lang.SecurityException", 401),
    "IOException": ("java.io.IOException", 403),
    "FileAlreadyExistsException": ("org.apache.hadoop.fs.FileAlreadyExistsException", 403),
    "ParentNotDirectoryException": ("org.apache.hadoop.fs.ParentNotDirectoryException", 403),
    "PathIsNotEmptyDirectoryException": ("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", 403),
    "FileNotFoundException": ("java.io.FileNotFoundException", 404),
}


class RemoteError(Exception):
    def __init__(self, exception: str, message: str) -> None:
        super().__init__(message)
        self.exception, self.message = exception, message

    def response(self) -> web.Response:
        java, status = JAVA_CLASS[self.exception]
        body = {"RemoteException": {"exception": self.exception, "javaClassName": java, "message": self.message}}
        return web.json_response(body, status=status)


def hdfs_path(raw: str) -> str:
    """The normalized absolute HDFS path of a URL path (after /webhdfs/v1)."""
    parts = [p for p in raw.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise RemoteError("IllegalArgumentException", f"Invalid path name {raw}")
    return "/" + "/".join(parts)


class Store:
    """The HDFS namespace, kept as a local folder."""

    def __init__(self, root: Path, user: str) -> None:
        self.root, self.user = root, user

    def local(self, path: str) -> Path:
        return self.root / path.lstrip("/") if path != "/" else self.root

    def parent_dir(self, path: str, create: bool) -> Path:
        """The local folder holding ``path``; every ancestor must be a directory."""
        local = self.local(path)
        ancestors = [a for a in reversed(local.parents) if a.is_relative_to(self.root) and a != self.root]
        for anc in ancestors:
            if anc.is_file():
                rel = "/" + anc.relative_to(self.root).as_posix()
                raise RemoteError("ParentNotDirectoryException", f"{rel} (is not a directory)")
            if not anc.exists():
                if not create:
                    raise RemoteError("FileNotFoundException", f"Parent directory doesn't exist: {path}")
                anc.mkdir()
        return local.parent

    def status(self, path: str, suffix: str = "") -> dict[str, object]:
        local = self.local(path)
        try:
            st = local.stat()
        except FileNotFoundError:
            raise RemoteError("FileNotFoundException", f"File does not exist: {path}") from None
        is_dir = stat.S_ISDIR(st.st_mode)
        return {
            "accessTime": 0 if is_dir else int(st.st_atime * 1000),
            "blockSize": 0 if is_dir else BLOCK_SIZE,
            "childrenNum": len(os.listdir(local)) if is_dir else 0,
            "fileId": st.st_ino,
            "group": "supergroup",
            "length": 0 if is_dir else st.st_size,
            "modificationTime": int(st.st_mtime * 1000),
            "owner": self.user,
            "pathSuffix": suffix,
            "permission": "755" if is_dir else "644",
            "replication": 0 if is_dir else 1,
            "storagePolicy": 0,
            "type": "DIRECTORY" if is_dir else "FILE",
        }

    def mkdirs(self, path: str) -> bool:
        local = self.local(path)
        self.parent_dir(path, create=True)
        if local.is_file():
            raise RemoteError("FileAlreadyExistsException", f"Path is not a directory: {path}")
        local.mkdir(exist_ok=True)
        return True

    def rename(self, src: str, dst: str) -> bool:
        # FileSystem#rename(Path, Path) semantics: false rather than an exception for the
        # common failures, a move *into* an existing directory.
        s, d = self.local(src), self.local(dst)
        if src == "/" or not s.exists():
            return False
        if dst == src:
            return True
        if (dst + "/").startswith(src + "/"):
            raise RemoteError("IOException", f"Rename destination {dst} is a directory or file under source {src}")
        if d.is_dir():
            d = d / s.name
        if d.exists() or not d.parent.is_dir():
            return False
        os.rename(s, d)
        return True

    def delete(self, path: str, recursive: bool) -> bool:
        local = self.local(path)
        if path == "/" or not local.exists():
            return False
        if local.is_dir():
            if any(local.iterdir()) and not recursive:
                raise RemoteError("PathIsNotEmptyDirectoryException", f"`{path} is non empty': Directory is not empty")
            shutil.rmtree(local)
        else:
            local.unlink()
        return True


class WebHdfs:
    def __init__(self, store: Store, host: str, port: int, datanode_port: int) -> None:
        self.store, self.host, self.port, self.datanode_port = store, host, port, datanode_port

    def datanode_url(self, request: web.Request, path: str, op: str) -> str:
        query = {k: v for k, v in request.query.items() if k not in ("op", "noredirect")}
        query.update(op=op, namenoderpcaddress=f"{self.host}:{self.port}")
        return f"http://{self.host}:{self.datanode_port}{PREFIX}{quote(path)}?{urlencode(query)}"

    def redirect(self, request: web.Request, path: str, op: str) -> web.Response:
        url = self.datanode_url(request, path, op)
        if request.query.get("noredirect", "false").lower() == "true":
            return web.json_response({"Location": url})
        return web.Response(status=307, headers={"Location": url, "Content-Type": "application/octet-stream"})

    async def namenode(self, request: web.Request) -> web.StreamResponse:
        try:
            path, op = self.parse(request)
            st = self.store
            if op in ("CREATE", "APPEND"):
                if op == "APPEND":
                    st.status(path)  # a missing file fails here, before any data is sent
                return self.redirect(request, path, op)
            if op == "OPEN":
                if st.status(path)["type"] != "FILE":
                    raise RemoteError("FileNotFoundException", f"Path is not a file: {path}")
                return self.redirect(request, path, op)
            if op == "GETFILESTATUS":
                return web.json_response({"FileStatus": st.status(path)})
            if op == "LISTSTATUS":
                status = st.status(path)
                if status["type"] == "FILE":
                    return web.json_response({"FileStatuses": {"FileStatus": [status]}})
                names = sorted(os.listdir(st.local(path)))
                return web.json_response({"FileStatuses": {"FileStatus": [
                    st.status(f"{path.rstrip('/')}/{n}", n) for n in names]}})
            if op == "GETHOMEDIRECTORY":
                return web.json_response({"Path": f"/user/{request.query.get('user.name', 'dr.who')}"})
            if op == "GETCONTENTSUMMARY":
                raise RemoteError("UnsupportedOperationException", "GETCONTENTSUMMARY is not implemented by this test server")
            if op == "MKDIRS":
                return web.json_response({"boolean": st.mkdirs(path)})
            if op == "RENAME":
                dst = request.query.get("destination", "")
                if not dst:
                    raise RemoteError("IllegalArgumentException", "Required param destination for op: RENAME is null or empty")
                if not dst.startswith("/"):
                    raise RemoteError("IllegalArgumentException",
                                      f'Invalid parameter value: destination = "{dst}" is not an absolute path')
                return web.json_response({"boolean": st.rename(path, hdfs_path(dst))})
            assert op == "DELETE"
            recursive = request.query.get("recursive", "false").lower() == "true"
            return web.json_response({"boolean": st.delete(path, recursive)})
        except RemoteError as exc:
            return exc.response()

    async def datanode(self, request: web.Request) -> web.StreamResponse:
        try:
            path, op = self.parse(request)
            st = self.store
            local = st.local(path)
            if op == "OPEN":
                size = st.status(path)["length"]
                assert isinstance(size, int)
                offset = int(request.query.get("offset", "0"))
                if offset < 0 or offset > size:
                    raise RemoteError("IOException", f"Offset={offset} out of the range [0, {size}); OPEN, path={path}")
                length = int(request.query.get("length", str(size - offset)))
                with open(local, "rb") as f:
                    f.seek(offset)
                    data = f.read(max(0, min(length, size - offset)))
                return web.Response(body=data, content_type="application/octet-stream")
            if op == "CREATE":
                overwrite = request.query.get("overwrite", "false").lower() == "true"
                if local.is_dir():
                    raise RemoteError("FileAlreadyExistsException", f"{path} already exists as a directory")
                if local.exists() and not overwrite:
                    raise RemoteError("FileAlreadyExistsException", f"{path} for client {request.remote} already exists")
                st.parent_dir(path, create=True)
                mode = "wb"
            else:  # APPEND
                if st.status(path)["type"] != "FILE":
                    raise RemoteError("FileNotFoundException", f"Failed to append to non-existent file {path}")
                mode = "ab"
            # Like HDFS, the file exists (and grows) while it is written.
            with open(local, mode) as f:
                async for chunk in request.content.iter_chunked(1 << 20):
                    f.write(chunk)
            if op == "CREATE":
                return web.Response(status=201, headers={"Location": f"hdfs://{self.host}:{self.port}{quote(path)}"})
            return web.Response(status=200)
        except RemoteError as exc:
            return exc.response()

    @staticmethod
    def parse(request: web.Request) -> tuple[str, str]:
        op = request.query.get("op", "").upper()
        allowed = {"GET": GET_OPS | {"OPEN"}, "PUT": PUT_OPS, "POST": POST_OPS, "DELETE": DELETE_OPS}.get(request.method, set())
        if op not in allowed:
            kind = {"GET": "Get", "PUT": "Put", "POST": "Post", "DELETE": "Delete"}.get(request.method, "Http")
            raise RemoteError("IllegalArgumentException",
                              f'Invalid value for webhdfs parameter "op": No enum constant '
                              f"org.apache.hadoop.hdfs.web.resources.{kind}OpParam.Op.{op}")
        return hdfs_path(request.match_info["path"]), op


def make_apps(root: Path, host: str, port: int, datanode_port: int, user: str = "hdfs") -> tuple[web.Application, web.Application]:
    server = WebHdfs(Store(root, user), host, port, datanode_port)
    namenode, datanode = web.Application(), web.Application()
    namenode.router.add_route("*", PREFIX + "{path:.*}", server.namenode)
    datanode.router.add_route("*", PREFIX + "{path:.*}", server.datanode)
    return namenode, datanode


async def serve(root: Path, host: str, port: int, datanode_port: int) -> None:
    runners = []
    for app, p in zip(make_apps(root, host, port, datanode_port), (port, datanode_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, p).start()
        runners.append(runner)
    print(f"webhdfs ready: namenode http://{host}:{port}{PREFIX} datanode http://{host}:{datanode_port} root {root}",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9870, help="name node port")
    parser.add_argument("--datanode-port", type=int, default=0, help="data node port (default: port + 1)")
    parser.add_argument("--root", type=Path, required=True, help="local folder holding the files")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(serve(args.root.resolve(), args.host, args.port, args.datanode_port or args.port + 1))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

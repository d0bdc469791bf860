"""Local stand-ins for the servers models come from: a plain file server with Range support (and
switchable misbehaviour), and a fake Hugging Face Hub implementing the endpoints huggingface_hub
calls for ``hf_hub_download`` and ``list_repo_files``:

- ``HEAD``/``GET /{org}/{repo}/resolve/{revision}/{path}`` answering ``X-Repo-Commit``, ``ETag``
  (and ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, as the Hub does), honouring ``Range``;
- ``GET /api/models/{org}/{repo}/tree/{revision}?recursive=…`` listing ``{type, path, size, oid}``;
- errors with ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``).

Both bind to 127.0.0.1 and count the requests they serve, so tests can tell when the network was
(not) used.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from aiohttp import web

from tests.conftest import free_port


def _range(request: web.Request, size: int) -> tuple[int, int] | None:
    match = re.match(r"^bytes=(\d+)-(\d*)$", request.headers.get("Range", ""))
    if match is None:
        return None
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    return start, min(end, size - 1)


@dataclass
class FileServer:
    """Serves ``files`` (path -> bytes) over HTTP with Range, unless told to misbehave."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_after: int | None = None
    """Close the connection after sending this many body bytes (once), as a dropped link would."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) for each GET."""
    etag: str = '"v1"'
    base: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._get)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _get(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        self.requests.append((path, request.headers.get("Range")))
        if path.startswith("/redirect-out/"):
            raise web.HTTPFound("http://192.0.2.1/a.gguf")  # TEST-NET-1: refused by policy, never reached
        if path.startswith("/redirect/"):
            raise web.HTTPFound(path.removeprefix("/redirect"))
        body = self.files.get(path)
        if body is None:
            return web.Response(status=404)
        wanted = _range(request, len(body)) if self.honour_range else None
        if_range = request.headers.get("If-Range")
        if wanted is not None and if_range is not None and if_range != self.etag:
            wanted = None  # the file changed: send it whole
        if wanted is not None and wanted[0] >= len(body):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
        status, start, end = (206, *wanted) if wanted is not None else (200, 0, len(body) - 1)
        chunk = body[start : end + 1]
        resp = web.StreamResponse(status=status, headers={"ETag": self.etag, "Accept-Ranges": "bytes"})
        resp.content_length = len(chunk)
        if status == 206:
            resp.headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
        await resp.prepare(request)
        if self.cut_after is not None:
            cut, self.cut_after = self.cut_after, None
            await resp.write(chunk[:cut])
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(chunk)
        await resp.write_eof()
        return resp


COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeHub:
    """A fake Hub: ``repos`` maps ``org/repo`` to its files (path -> bytes) at revision ``main``."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    """``METHOD path`` of every request served."""
    base: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/models/{org}/{repo}/tree/{revision}", self._tree)
        app.router.add_route("*", "/{org}/{repo}/resolve/{revision}/{path:.+}", self._resolve)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _repo(self, request: web.Request) -> dict[str, bytes]:
        self.requests.append(f"{request.method} {request.path}")
        repo_id = f"{request.match_info['org']}/{request.match_info['repo']}"
        if repo_id not in self.repos:
            raise web.HTTPUnauthorized(headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "no such repo"})
        if request.match_info["revision"] not in ("main", COMMIT):
            raise web.HTTPNotFound(headers={"X-Error-Code": "RevisionNotFound", "X-Repo-Commit": COMMIT})
        return self.repos[repo_id]

    async def _tree(self, request: web.Request) -> web.Response:
        files = self._repo(request)
        return web.json_response(
            [
                {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for path, data in sorted(files.items())
            ]
        )

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        files = self._repo(request)
        data = files.get(request.match_info["path"])
        if data is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        sha = hashlib.sha256(data).hexdigest()
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{sha}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
            "Accept-Ranges": "bytes",
        }
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(data))})
        wanted = _range(request, len(data))
        if wanted is None:
            return web.Response(body=data, headers=headers)
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return web.Response(status=206, body=data[start : end + 1], headers=headers)

"""The browser client: ``/`` (never cached) and ``/static/<hash>/<file>`` (cached for a year).

The files under ``chat/web/static/`` are read once at start-up. Their
content hash names the folder they are served from, so every release gets new
URLs (a cached copy is never stale) and the modules' relative imports
(``./api.js``) stay inside one release. ``index.html`` is the only page; it
names the hashed folder and is revalidated on every load.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from tornado import web

from chat import errors
from chat.web.base import JsonErrors
from chat.web.headers import SecureHeaders

if TYPE_CHECKING:
    from chat.context import Context

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

CONTENT_TYPES = {
    ".js": "text/javascript; charset=UTF-8",
    ".css": "text/css; charset=UTF-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=UTF-8",
}


class ClientBundle:
    """The client's files in memory, the folder hash and the rendered index page."""

    def __init__(self, files: dict[str, bytes], index: bytes) -> None:
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name] + b"\0")
        self.files = files
        self.version = digest.hexdigest()[:16]
        self.prefix = f"/static/{self.version}/"
        self.index = index

    @classmethod
    def load(cls, join_price: int, directory: str = STATIC_DIR) -> ClientBundle:
        files = {}
        for name in sorted(os.listdir(directory)):
            if name == "index.html" or os.path.splitext(name)[1] not in CONTENT_TYPES:
                continue
            with open(os.path.join(directory, name), "rb") as f:
                files[name] = f.read()
        with open(os.path.join(directory, "index.html"), "rb") as f:
            template = f.read()
        bundle = cls(files, b"")
        bundle.index = template.replace(b"/static/VERSION/", bundle.prefix.encode()).replace(
            b"JOIN_PRICE", str(join_price).encode()
        )
        return bundle

    def routes(self, ctx: Context) -> list[web.URLSpec]:
        args = {"ctx": ctx, "bundle": self}
        return [
            web.url(r"/", IndexHandler, args),
            web.url(r"/static/([0-9a-f]{16})/([A-Za-z0-9_-]+\.[a-z]+)", AssetHandler, args),
        ]


class ClientHandler(SecureHeaders, JsonErrors, web.RequestHandler):
    """The page and its files: the same security headers (CSP included) as every answer."""

    cors = False  # the page and its files are for the server's own origin

    def initialize(self, ctx: Context, bundle: ClientBundle) -> None:
        self.ctx = ctx
        self.bundle = bundle

    def _send(self, body: bytes, content_type: str, cache: str) -> None:
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", cache)
        self.set_header("Content-Length", str(len(body)))
        if self.request.method != "HEAD":
            self.write(body)


class IndexHandler(ClientHandler):
    """The page; revalidated on every load so a new release is picked up at once."""

    def get(self) -> None:
        self._send(self.bundle.index, CONTENT_TYPES[".html"], "no-cache")

    def head(self) -> None:
        self.get()


class AssetHandler(ClientHandler):
    """A file of this release; any other release's hash or name is a 404."""

    def compute_etag(self) -> None:
        return None  # immutable: the URL changes whenever the content does

    def get(self, version: str, name: str) -> None:
        body = self.bundle.files.get(name)
        if version != self.bundle.version or body is None:
            raise errors.NotFound(f"No such path: {self.request.path}")
        content_type = CONTENT_TYPES[os.path.splitext(name)[1]]
        self._send(body, content_type, "public, max-age=31536000, immutable")

    def head(self, version: str, name: str) -> None:
        self.get(version, name)

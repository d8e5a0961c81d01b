"""Security headers, CORS and origin checks: one place for every response and handshake.

``SecureHeaders`` is a mixin for any ``RequestHandler`` (API, WebSocket,
static files): it drops Tornado's ``Server`` version header and sets the
headers below on every response that handler writes, errors included, since
Tornado calls ``set_default_headers`` again before ``write_error``.

The Content-Security-Policy suits a web client served from the same origin:
scripts, styles, images and fonts from the origin only (no inline script or
style, no eval), API calls and WebSockets to the origin only, never framed.
JSON answers are not documents a browser renders, so the one policy serves
them too.

Origins are compared whole: scheme, host and port (the default port made
explicit), against ``CHAT_ALLOWED_ORIGINS`` and ``CHAT_PUBLIC_ORIGIN``, and
never against the request's own ``Host`` header, which the client chooses.
"""

import urllib.parse
from typing import Any

from tornado import web

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> str | None:
    """``scheme://host:port`` in lower case, or None for anything that is not an origin."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return f"{scheme}://{parts.hostname.lower()}:{port or _DEFAULT_PORTS[scheme]}"


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "")


def own_origins(settings: Any) -> tuple[str, ...]:
    """``CHAT_PUBLIC_ORIGIN``; when unset, the address the server listens on (as configured).

    The fallback serves ``make run`` on a workstation (``http://127.0.0.1:8888``
    and ``http://localhost:8888``); behind a proxy, set the public origin.
    """
    if settings.public_origin:
        return (settings.public_origin,)
    host = settings.host
    if host in _LOOPBACK:
        return (f"http://127.0.0.1:{settings.port}", f"http://localhost:{settings.port}")
    return (f"http://{host}:{settings.port}",)


def trusted_origins(settings: Any) -> frozenset[str]:
    """The normalized origins allowed to call the API from a browser and open WebSockets."""
    found = set()
    for origin in (*settings.allowed_origins, *own_origins(settings)):
        normal = normalize_origin(origin) if origin else None
        if normal is not None:
            found.add(normal)
    return frozenset(found)


def content_security_policy(public_origin: str) -> str:
    connect = "'self'"
    normal = normalize_origin(public_origin) if public_origin else None
    if normal is not None:
        # Browsers before CSP3 do not count ws(s): of the origin as 'self'.
        parts = urllib.parse.urlsplit(public_origin)
        ws = "wss" if parts.scheme.lower() == "https" else "ws"
        connect += f" {ws}://{parts.netloc.lower()}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "font-src 'self'",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: Any) -> dict[str, str]:
    """The headers every response carries (computed once per process)."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": content_security_policy(settings.public_origin),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if settings.public_origin.lower().startswith("https://"):
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def application_settings(settings: Any) -> dict[str, Any]:
    """What ``SecureHeaders`` reads from ``Application.settings``: pass to Application(**...)."""
    return {
        "security_headers": security_headers(settings),
        "trusted_origins": trusted_origins(settings),
    }


class SecureHeaders:
    """Mixin for any handler: security headers on every response, and CORS.

    It reads ``security_headers`` and ``trusted_origins`` from the
    application's settings (``application_settings``), since Tornado sets
    default headers before ``initialize`` runs.

    ``cors``: whether browsers from ``CHAT_ALLOWED_ORIGINS`` may call this
    route (the operator API may not). A request whose ``Origin`` is trusted
    gets ``Access-Control-Allow-Origin`` naming it; any other origin gets no
    CORS header at all, so its browser withholds the answer.
    """

    cors = True
    application: web.Application

    def set_default_headers(self) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        super().set_default_headers()  # type: ignore[misc]
        handler.clear_header("Server")
        for name, value in self.application.settings["security_headers"].items():
            handler.set_header(name, value)
        if self.cors:
            origin = handler.request.headers.get("Origin")
            handler.add_header("Vary", "Origin")
            if origin is not None and self.origin_trusted(origin):
                handler.set_header("Access-Control-Allow-Origin", origin)
                handler.set_header("Access-Control-Expose-Headers", "Retry-After")

    def origin_trusted(self, origin: str) -> bool:
        normal = normalize_origin(origin)
        return normal is not None and normal in self.application.settings["trusted_origins"]

    def cors_preflight(self) -> bool:
        """Answer a CORS preflight from a trusted origin with 204; False for any other."""
        handler: web.RequestHandler = self  # type: ignore[assignment]
        origin = handler.request.headers.get("Origin")
        wanted = handler.request.headers.get("Access-Control-Request-Method", "")
        methods = [
            m
            for m in ("GET", "POST", "DELETE")
            if getattr(type(self), m.lower()) is not getattr(web.RequestHandler, m.lower())
        ]
        if not (self.cors and origin and self.origin_trusted(origin) and wanted in methods):
            return False
        handler.set_status(204)
        handler.clear_header("Content-Type")
        handler.set_header("Access-Control-Allow-Methods", ", ".join(methods))
        handler.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        handler.set_header("Access-Control-Max-Age", "600")
        handler.finish()
        return True

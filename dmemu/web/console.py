"""The browser console: static files shipped in the package (``dmemu/web/static``), served at ``/``.

No build step and no network: plain JavaScript modules, one stylesheet, nothing fetched from
elsewhere (the Content-Security-Policy says so to the browser too). The files carry no data and
need no token; the page reads the token from the URL's fragment (``/#token=...``, which a
browser never sends to a server nor in a Referer), keeps it in the tab's sessionStorage and sends
it as a header with every ``/api/`` call, as any other client does.
"""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any, TextIO
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CONSOLE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "element.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
}
"""Every file the console loads, and its type: nothing else under /console/ is served."""

SECURITY_HEADERS = {
    # Only this server's own scripts, styles and API: no inline script, no other site, no frames.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def console_url(url: str, token: str) -> str:
    """The address a person opens: the token in the fragment, which never leaves the browser."""
    return f"{url}/#token={quote(token, safe='')}" if token else f"{url}/"


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def console_routes() -> list[Route]:
    """``/`` (the page) and ``/console/NAME`` (its scripts and stylesheet), read once."""
    files = {name: (_read(name), media_type) for name, media_type in CONSOLE_FILES.items()}

    def answer(name: str) -> Response:
        content, media_type = files[name]
        return Response(content, media_type=media_type, headers=SECURITY_HEADERS)

    async def index(request: Request) -> Response:
        return answer("index.html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files or name == "index.html":
            return Response(f"no console file {name!r}\n", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        return answer(name)

    return [Route("/", index, methods=["GET"]), Route("/console/{name}", static, methods=["GET"])]


def announce(server: Any, what: str, out: TextIO | None = None) -> None:
    """Print where `server` (a `WebServer`) serves `what`: its URL, token, API and console, as
    ``dmemu serve`` and ``dmemu demo --web`` both say it (one format for scripts reading it)."""
    out = out or sys.stdout
    print(f"dmemu serving {what} on {server.url} (Ctrl-C stops)", file=out)
    print(f"  token: {server.token}  (send Authorization: Bearer TOKEN or X-Dmemu-Token: TOKEN)", file=out)
    print(f"  API: {server.url}/api/elements  OpenAPI: {server.url}/api/openapi.json", file=out)
    print(f"  console: {server.console_url}", file=out, flush=True)

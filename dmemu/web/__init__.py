"""The web face of a running DataMiner System: a REST API with live updates (server-sent
events) and an OpenAPI document, on Starlette served by uvicorn on a thread of its own.

``server = dms.serve(port=0)`` serves a DMS on 127.0.0.1 (`server.url`, `server.token`);
every ``/api/`` call carries the token in a header. It sits on top of `dmemu.pages` and
`dmemu.dms`: the same page model and display texts as `dmemu show`, passwords never sent.
"""

from .app import ROUTES, ApiRoute, create_app
from .errors import ApiError
from .server import WebServer, WebServerError, serve

__all__ = ["ROUTES", "ApiError", "ApiRoute", "WebServer", "WebServerError", "create_app", "serve"]

"""The test app served over real HTTP from a thread (werkzeug), and a tiny HTTP client that
can connect from another loopback address (``127.0.0.2``) and keeps cookies."""

from __future__ import annotations

import http.client
import json as jsonlib
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from socketserver import BaseServer
from typing import Self
from urllib.parse import urlencode, urlsplit

from werkzeug.serving import make_server

from tests.conftest import free_port


class ServedInThread:
    """A ``socketserver`` server (``self.server``) run by a daemon thread inside ``with``:
    started on entry, shut down and closed on exit."""

    server: BaseServer

    def __enter__(self) -> Self:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class LiveServer(ServedInThread):
    """``app`` on http://127.0.0.1:<free port>, threaded, in this process (same database)."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return jsonlib.loads(self.body)


@dataclass
class HttpClient:
    """One visitor: connects from ``source`` (any 127.x address works on loopback)."""

    base_url: str
    source: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, *, data=None, json=None, headers=None) -> Response:
        parts = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=30, source_address=(self.source, 0)
        )
        sent = {"Host": parts.netloc, **(headers or {})}
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
            sent.setdefault("Accept", "application/json")
        elif data is not None:
            body = urlencode(data).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            response = Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel["expires"] and "1970" in morsel["expires"] or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> Response:
        return self.request("POST", path, **kwargs)

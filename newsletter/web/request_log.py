"""Request ids (``X-Request-ID`` honoured when sane, else made) and, with JSON logs, one line
per request naming the route's rule, never its path: paths hold confirmation tokens."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from ..observability.logs import set_request_id

log = logging.getLogger("newsletter.request")

# What a proxy's id looks like (nginx $request_id is 32 hex); anything else is replaced.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def init_app(app: Flask) -> None:
    json_logs = app.config.get("LOG_FORMAT") == "json"

    @app.before_request
    def assign_request_id() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        g.request_started = time.perf_counter()
        set_request_id(g.request_id)

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
        if json_logs:
            started = g.get("request_started") or time.perf_counter()
            log.info(
                "%s %s %s",
                request.method,
                request.url_rule.rule if request.url_rule else "(no route)",
                response.status_code,
                extra={
                    "method": request.method,
                    "route": request.url_rule.rule if request.url_rule else None,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "remote_addr": request.remote_addr,
                },
            )
        return response

    @app.teardown_request
    def forget_request_id(_exc: BaseException | None) -> None:
        set_request_id(None)

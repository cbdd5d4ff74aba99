"""Errors as JSON for API clients and as pages for people; never a bare 500."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from ..extensions import db
from .inputs import InputError, wants_json

log = logging.getLogger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, fields: dict[str, str] | None = None):
    if wants_json():
        body = {"error": {"code": code, "message": message, "fields": fields or {}}}
        return jsonify(body), status
    return render_template("error.html", status=status, message=message, fields=fields), status


def _friendly_message(exc: HTTPException) -> str:
    messages = {
        400: _("The request could not be understood."),
        401: _("Please log in."),
        403: _("You are not allowed to do this."),
        404: _("This page does not exist."),
        405: _("This method is not allowed here."),
        413: _("The request is too large."),
        415: _("This kind of content is not accepted here."),
        429: _("Too many requests. Please wait a moment and try again."),
    }
    return messages.get(exc.code or 400, exc.description or _("Something went wrong."))


def init_app(app: Flask) -> None:
    @app.errorhandler(InputError)
    def handle_input_error(exc: InputError):
        return error_response(exc.code or 400, exc.error_code, exc.description or "", exc.fields)

    @app.errorhandler(CSRFError)
    def handle_csrf(exc: CSRFError):
        message = _("The form has expired or was not sent from this site. Please try again.")
        return error_response(400, "csrf", message)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException):
        status = exc.code or 500
        if status >= 500:
            return handle_unexpected(exc)
        response = error_response(status, ERROR_CODES.get(status, "error"), _friendly_message(exc))
        if status == 405 and getattr(exc, "valid_methods", None):
            body, code = response
            return body, code, {"Allow": ", ".join(exc.valid_methods)}
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        if not isinstance(exc, InternalServerError):
            log.exception("unhandled error")
        db.session.rollback()
        message = _("Something went wrong on our side. Please try again later.")
        if wants_json():
            return jsonify(
                {"error": {"code": "server_error", "message": message, "fields": {}}}
            ), 500
        return render_template("error.html", status=500, message=message, fields=None), 500

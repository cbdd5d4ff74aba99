"""Reading request bodies: JSON or forms, strictly, with clear 4xx errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import request
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from ..domain.wording import ExplainedError

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class InputError(HTTPException):
    """A 4xx answer with a machine code, a message and per-field messages."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description=message)
        self.code = status
        self.error_code = code
        self.fields = fields or {}


def invalid_fields(fields: dict[str, str]) -> InputError:
    """The 422 for a form whose ``fields`` (name -> message shown beside it) were refused."""
    return InputError(422, "invalid", _("Check the highlighted fields."), fields)


def is_json_request() -> bool:
    return request.mimetype == "application/json" or request.mimetype.endswith("+json")


def wants_json() -> bool:
    """JSON bodies and API paths get JSON answers; browsers get pages."""
    if request.path.startswith("/api/") or is_json_request():
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def read_payload(*, allow_form: bool = True) -> dict[str, Any]:
    """The request body as a dict of fields, from JSON or a form."""
    if is_json_request():
        try:
            data = request.get_json(silent=True)
            # "\ud800" is valid JSON but not text: no database, hash or email can encode it.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (RecursionError, UnicodeEncodeError):  # RecursionError: "[[[[..." 100k deep
            data = None
        if data is None:
            raise InputError(400, "malformed_json", "The request body is not valid JSON.")
        if not isinstance(data, dict):
            raise InputError(400, "malformed_json", "The request body must be a JSON object.")
        return data
    if allow_form and request.mimetype in FORM_TYPES:
        return request.form.to_dict()
    accepted = "application/json" + (" or a form" if allow_form else "")
    raise InputError(415, "unsupported_media_type", f"Send the body as {accepted}.")


def text_field(payload: dict[str, Any], name: str) -> str | None:
    """A field that must be text when present."""
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(422, "invalid", "Check the highlighted fields.", {name: "Must be text."})
    return value


def say(text: str | ExplainedError) -> str:
    """Something the domain tells a person, in the reader's language.

    A ``Message`` or an ``ExplainedError`` goes through its template and values, a plain
    (``translatable``) sentence through the catalog; unknown text comes back as is.
    email-validator explains an address precisely but only in English: English readers get
    its words (``detail``), others the translated sentence.
    """
    detail = getattr(text, "detail", None)
    if detail and str(get_locale()) == "en":
        return detail
    template = getattr(text, "template", None)
    if template is not None:
        return _(template, **text.params)  # type: ignore[union-attr]
    return _(text) if text else text  # type: ignore[arg-type]


def page_or_json(
    json_answer: ResponseReturnValue | InputError, page: Callable[[], ResponseReturnValue]
) -> ResponseReturnValue:
    """The one fork between API clients and browsers.

    JSON clients get ``json_answer``; an ``InputError`` is raised so that the error handler writes
    the contract's error shape. Browsers get what ``page`` builds, called only for them (it
    may flash a notice, which must not touch a JSON client's session).
    """
    if wants_json():
        if isinstance(json_answer, InputError):
            raise json_answer
        return json_answer
    return page()

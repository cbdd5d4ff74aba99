"""What the staff API's views share (``api_staff``, ``api_digests``): the blueprint, the guard
on browser-session writes, reading bodies and query arguments, pages, and the error answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Select

from ..config import MAX_PAGE_SIZE
from ..domain.digests import DigestStateError
from ..domain.field_rules import InvalidInput
from ..domain.paging import Page, paginate
from ..extensions import csrf, db
from .auth import audit, bearer_token
from .inputs import InputError, is_json_request, read_payload, say

blueprint = Blueprint("api_staff", __name__, url_prefix="/api")
# Scripts authenticate with bearer tokens, which a cross-site page cannot send. Browser
# sessions are guarded by ``_guard_session_writes`` below (JSON bodies only) instead of tokens.
csrf.exempt(blueprint)

MAX_ID = 2**63 - 1  # beyond BIGINT: no such row, and PostgreSQL would refuse the query
T = TypeVar("T")


@blueprint.before_request
def _guard_session_writes() -> None:
    """A write from a browser session must carry a JSON body, which cross-site forms cannot."""
    if (
        request.method in ("POST", "PATCH", "PUT", "DELETE")
        and bearer_token() is None
        and current_user.is_authenticated
        and not is_json_request()
    ):
        raise InputError(415, "unsupported_media_type", "Send the body as application/json.")


def invalid(fields: dict[str, str], message: str | None = None) -> InputError:
    """The 422 answer naming each bad field, in the reader's language."""
    return InputError(
        422,
        "invalid",
        message or _("Check the highlighted fields."),
        {name: say(text) for name, text in fields.items()},
    )


def json_body() -> dict[str, Any]:
    if not is_json_request():
        raise InputError(415, "unsupported_media_type", "Send the body as application/json.")
    return read_payload(allow_form=False)


def optional_json_body() -> dict[str, Any]:
    """Action routes (pause, cancel...) take no body; an empty or JSON one is accepted."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


def int_arg(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise invalid({name: "Must be a whole number."})
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" between {minimum} and {maximum}" if maximum else f" of at least {minimum}"
        raise invalid({name: f"Must be a number{bound}."})
    return value


def choice_arg(name: str, choices: list[str]) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise invalid({name: "One of: " + ", ".join(choices) + "."})
    return value


def paging() -> tuple[int, int]:
    return int_arg("page", 1), int_arg("per_page", 50, 1, MAX_PAGE_SIZE)


def page_json(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    return {
        "items": items,
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "pages": page.pages,
    }


def page_answer(query: Select[Any], as_dict: Callable[[Any], dict[str, Any]]) -> Response:
    """One page of ``query``'s rows (``page`` and ``per_page`` from the URL), each ``as_dict``."""
    page, per_page = paging()
    result = paginate(query, page=page, per_page=per_page)
    return jsonify(page_json(result, [as_dict(row) for row in result.items]))


def get_or_404(model: type, row_id: int, what: str) -> Any:
    row = db.session.get(model, row_id) if 0 < row_id <= MAX_ID else None
    if row is None:
        raise InputError(404, "not_found", f"No {what} {row_id}.")
    return row


def conflict(exc: DigestStateError) -> InputError:
    db.session.rollback()
    return InputError(409, "conflict", str(exc))


def write(
    change: Callable[[], T], action: str, kind: str, details: Callable[[T], dict] | None = None
) -> T:
    """Run a change from the request body, audit it and commit; bad fields answer 422 and a
    state that does not allow it 409, with nothing kept."""
    try:
        row = change()
    except InvalidInput as exc:
        db.session.rollback()
        raise invalid(exc.fields) from None
    except DigestStateError as exc:
        raise conflict(exc) from None
    audit(action, kind, row.id, details(row) if details else None)
    db.session.commit()
    return row


def create_from_body(
    create: Callable[[dict[str, Any]], T], kind: str, details: Callable[[T], dict] | None = None
) -> T:
    """A new ``kind`` row made by ``create`` from the JSON body: ``write``, audited as
    ``<kind>.create``."""
    return write(lambda: create(json_body()), f"{kind}.create", kind, details)

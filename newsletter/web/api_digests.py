"""Staff JSON API, digests (``/api/v1/digests``): schedule one, follow it, pause, resume,
cancel, re-send the failed deliveries, preview and test-send. Routes of ``api_common``'s
blueprint; the worker does the sending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify
from sqlalchemy import select

from ..config import LANGUAGES
from ..delivery.digest_previews import preview_message
from ..domain.addresses import InvalidAddress, normalise_address
from ..domain.digests import (
    DigestStateError,
    cancel_digest,
    create_digest,
    deliveries_query,
    digest_as_dict,
    digests_query,
    pause_digest,
    prepare_resend_failed,
    resume_digest,
)
from ..domain.paging import paginate
from ..domain.releases import iso
from ..extensions import db
from ..models import Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber
from .api_common import (
    blueprint,
    choice_arg,
    conflict,
    create_from_body,
    get_or_404,
    invalid,
    json_body,
    optional_json_body,
    page_answer,
    page_json,
    paging,
    write,
)
from .auth import audit, requires
from .digest_test_copy import send_test_copy
from .inputs import say
from .two_factor_gate import step_up


@blueprint.get("/v1/digests")
@requires("digests:read")
def get_digests():
    status = choice_arg("status", list(DigestStatus))
    language = choice_arg("language", list(LANGUAGES))
    return page_answer(digests_query(status, language), digest_as_dict)


@blueprint.post("/v1/digests")
@requires("digests:send")
@step_up
def post_digest():
    digest = create_from_body(create_digest, "digest", lambda digest: {"language": digest.language})
    return jsonify(id=digest.id, status=digest.status, send_at=iso(digest.send_at)), 201


@blueprint.get("/v1/digests/<int:digest_id>")
@requires("digests:read")
def get_digest(digest_id: int):
    return jsonify(digest_as_dict(get_or_404(Digest, digest_id, "digest")))


def _digest_action(digest_id: int, action: Callable[[Digest], object], name: str) -> Response:
    optional_json_body()
    digest = get_or_404(Digest, digest_id, "digest")

    def change() -> Digest:
        action(digest)
        return digest

    write(change, f"digest.{name}", "digest")
    db.session.refresh(digest)
    return jsonify(digest_as_dict(digest))


@blueprint.post("/v1/digests/<int:digest_id>/pause")
@requires("digests:send")
def pause(digest_id: int):
    return _digest_action(digest_id, pause_digest, "pause")


@blueprint.post("/v1/digests/<int:digest_id>/resume")
@requires("digests:send")
@step_up
def resume(digest_id: int):
    return _digest_action(digest_id, resume_digest, "resume")


@blueprint.post("/v1/digests/<int:digest_id>/cancel")
@requires("digests:send")
def cancel(digest_id: int):
    return _digest_action(digest_id, cancel_digest, "cancel")


@blueprint.post("/v1/digests/<int:digest_id>/resend-failed")
@requires("digests:send")
@step_up
def resend_failed(digest_id: int):
    optional_json_body()
    digest = get_or_404(Digest, digest_id, "digest")
    try:
        requeued = prepare_resend_failed(digest)
    except DigestStateError as exc:
        raise conflict(exc) from None
    audit("digest.resend_failed", "digest", digest.id, {"requeued": requeued})
    db.session.commit()
    return jsonify(requeued=requeued, digest=digest_as_dict(digest))


@blueprint.get("/v1/digests/<int:digest_id>/deliveries")
@requires("digests:read")
def get_deliveries(digest_id: int):
    get_or_404(Digest, digest_id, "digest")
    status = choice_arg("status", list(DeliveryStatus))
    page, per_page = paging()
    result = paginate(deliveries_query(digest_id, status), page=page, per_page=per_page)
    emails = dict(
        db.session.execute(
            select(Subscriber.id, Subscriber.email).where(
                Subscriber.id.in_([row.subscriber_id for row in result.items])
            )
        ).all()
    )
    return jsonify(page_json(result, [delivery_as_dict(row, emails) for row in result.items]))


def delivery_as_dict(delivery: Delivery, emails: dict[int, str]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "subscriber_id": delivery.subscriber_id,
        "email": emails.get(delivery.subscriber_id),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "smtp_code": delivery.smtp_code,
        "smtp_response": delivery.smtp_response,
        "updated_at": iso(delivery.updated_at),
        "next_attempt_at": iso(delivery.next_attempt_at)
        if delivery.status == DeliveryStatus.QUEUED
        else None,
    }


@blueprint.get("/v1/digests/<int:digest_id>/preview")
@requires("digests:draft")
def preview(digest_id: int):
    digest = get_or_404(Digest, digest_id, "digest")
    fmt = choice_arg("format", ["json", "html", "text"]) or "json"
    message = preview_message(digest)
    db.session.rollback()  # a preview composes without keeping anything
    parts = {
        part.get_content_subtype(): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }
    if fmt == "html":
        return Response(parts.get("html", ""), mimetype="text/html")
    if fmt == "text":
        return Response(parts.get("plain", ""), mimetype="text/plain")
    return jsonify(
        subject=str(message["Subject"]), text=parts.get("plain", ""), html=parts.get("html", "")
    )


@blueprint.post("/v1/digests/<int:digest_id>/test-send")
@requires("digests:draft")
def test_send(digest_id: int):
    payload = json_body()
    digest = get_or_404(Digest, digest_id, "digest")
    try:
        address = normalise_address(payload.get("email"))
    except InvalidAddress as exc:
        raise invalid({"email": say(exc)}) from None
    send_test_copy(digest, address)
    db.session.commit()
    return jsonify(status="queued", email=address.email), 202

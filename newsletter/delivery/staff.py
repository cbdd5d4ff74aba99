"""Staff invitations: a signed link, emailed through the outbox in the inviter's transaction."""

from __future__ import annotations

from ..config import STAFF_INVITE
from ..domain.staff import Role
from ..models import User
from .links import public_url_for
from .outbox import queue_email
from .signing import app_signer

INVITE_KIND = "staff_invite"


def invitation_token(email_key: str, role: Role, inviter: User) -> str:
    return app_signer().sign(STAFF_INVITE, {"e": email_key, "r": str(role), "by": inviter.id})


def send_staff_invitation(email: str, email_key: str, role: Role, inviter: User) -> int:
    """Queue the invitation; returns the outbox id. The caller commits."""
    token = invitation_token(email_key, role, inviter)
    return queue_email(
        INVITE_KIND,
        to=email,
        template="staff_invite",
        language=inviter.language,
        invite_url=public_url_for("staff_admin.accept_invitation_page", token=token),
        inviter=inviter.email,
        role=str(role),
        days=STAFF_INVITE.max_age.days,
    )


def read_invitation(token: str) -> tuple[bool, dict | None]:
    """``(expired, data)``; data is None for a tampered or malformed link."""
    result = app_signer().verify(STAFF_INVITE, token)
    data = result.data if isinstance(result.data, dict) else None
    if result.invalid or data is None or not {"e", "r", "by"} <= set(data):
        return False, None
    return result.expired, data

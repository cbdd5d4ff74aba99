"""Site accounts: registration, verification, login, password changes, email changes, staff.

Nothing here sees a request or sends mail: the web layer parses input and the delivery layer
queues the emails; callers commit. Answers that a visitor sees never reveal whether an address
has an account (registration, reset), and a login for an unknown address costs the same time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..config import (
    ACCOUNT_NOTICES_PER_ADDRESS_PER_DAY,
    CHANGE_EMAIL,
    LANGUAGES,
    RESET_PASSWORD,
    VERIFY_EMAIL,
)
from ..extensions import db
from ..models import ApiToken, OneTimeCode, OutboxMessage, Subscriber, User, utcnow
from . import codes, login_throttle
from .addresses import Address, normalise_address
from .mail_caps import under_daily_cap
from .passwords import check_password_policy, hash_password, verify_password
from .tokens import LinkState, TokenSigner

ACCOUNT_EXISTS_KIND = "account_exists"


class AccountExists(ValueError):
    """An account already uses this address (only ever said to staff tools, never visitors)."""


def find_user(address: Address) -> User | None:
    return db.session.scalar(select(User).where(User.email_key == address.key))


def find_account_id(address: Address, *, pending_only: bool = False) -> int | None:
    """The id of the account using ``address`` (only one still waiting for verification when
    ``pending_only``), or None. One row of one column or none, so the lookup costs the same
    whether or not the address is registered (issue 11: no loaded account to tell them apart).
    """
    query = select(User.id).where(User.email_key == address.key)
    if pending_only:
        query = query.where(User.email_verified_at.is_(None))
    return db.session.scalar(query)


@dataclass(frozen=True)
class Registration:
    user: User
    # False when the address already had an account: the visitor sees the same answer, the
    # owner gets a notice instead of a verification code.
    created: bool


def register_account(
    address: Address, password: object, *, language: str, policy: str
) -> Registration:
    """Create an unverified account; raises ``PasswordRejected`` naming every broken rule."""
    clean = check_password_policy(password, email=address.email, policy=policy)
    # Hash before looking the address up: both paths cost the same, so timing reveals nothing.
    password_hash = hash_password(clean)
    existing = find_user(address)
    if existing is not None:
        return Registration(existing, created=False)
    user = User(
        email=address.email,
        email_key=address.key,
        password_hash=password_hash,
        language=language if language in LANGUAGES else LANGUAGES[0],
        is_staff=False,
        session_version=1,
        failed_logins=0,
    )
    # A simultaneous registration for the same address may insert first: the unique index
    # refuses ours inside a savepoint, and this one answers as if it came second.
    try:
        with db.session.begin_nested():
            db.session.add(user)
            db.session.flush()
    except IntegrityError:
        existing = find_user(address)
        if existing is None:  # pragma: no cover - the other row vanished again
            raise
        return Registration(existing, created=False)
    return Registration(user, created=True)


def create_staff(
    email: str, password: str, *, policy: str = "site", language: str = "fr", role: str = "owner"
) -> User:
    """A verified staff account with ``role`` (see ``domain.staff``); raises
    ``InvalidAddress``, ``PasswordRejected`` or ``AccountExists``. Usable from commands and
    tests alike; the caller commits."""
    address = normalise_address(email)
    clean = check_password_policy(password, email=address.email, policy=policy)
    if find_user(address) is not None:
        raise AccountExists(address.email)
    user = User(
        email=address.email,
        email_key=address.key,
        password_hash=hash_password(clean),
        language=language if language in LANGUAGES else LANGUAGES[0],
        is_staff=True,
        staff_role=role,
        email_verified_at=utcnow(),
        session_version=1,
        failed_logins=0,
    )
    db.session.add(user)
    db.session.flush()
    return user


def may_send_account_notice(user: User) -> bool:
    """Capped, so registering someone else's address repeatedly cannot flood their inbox."""
    return under_daily_cap(user.email_key, ACCOUNT_EXISTS_KIND, ACCOUNT_NOTICES_PER_ADDRESS_PER_DAY)


class LoginState(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"  # unknown address, wrong password or locked: the visitor sees one answer
    UNVERIFIED = "unverified"  # right password, address not verified yet


@dataclass(frozen=True)
class LoginOutcome:
    state: LoginState
    user: User | None = None
    locked: bool = False


def authenticate(
    user: User | None,
    password: object,
    *,
    client: str | None = None,
    now: datetime | None = None,
) -> LoginOutcome:
    """Check a login from ``client`` (its address); commits the attempt's count first.

    Failures are throttled, not locked out (see ``login_throttle``): a client that keeps
    failing waits growing delays, and a stranger's failures never stop the owner, from an
    address that has not been failing, from logging in. ``locked`` means "throttled". A hash
    made with older argon2 parameters is replaced by a fresh one.
    """
    now = now or utcnow()
    if user is None:
        verify_password(None, password)
        return LoginOutcome(LoginState.FAILED)
    if not login_throttle.reserve_attempt(user.id, client, now):
        verify_password(None, password)  # the same work as a check: timing tells nothing
        return LoginOutcome(LoginState.FAILED, user, locked=True)
    check = verify_password(user.password_hash, password)
    if not check.matches:
        return LoginOutcome(LoginState.FAILED, user)
    login_throttle.record_success(user.id, client)
    if check.new_hash is not None:
        user.password_hash = check.new_hash
    user.failed_logins = 0
    user.locked_until = None
    if user.email_verified_at is None:
        return LoginOutcome(LoginState.UNVERIFIED, user)
    user.last_login_at = now
    return LoginOutcome(LoginState.OK, user)


def mark_email_verified(user: User, *, now: datetime | None = None) -> None:
    if user.email_verified_at is None:
        user.email_verified_at = now or utcnow()
    codes.revoke_codes(user, codes.VERIFY_EMAIL, now=now)


def set_password(user: User, password: object, *, policy: str) -> None:
    """Store a new password under the policy and end every session of the account.

    Raises ``PasswordRejected``. Reset codes die with the old password, and a lock from
    failed logins is lifted (the owner just proved control of the address or the session).
    """
    clean = check_password_policy(password, email=user.email, policy=policy)
    user.password_hash = hash_password(clean)
    user.session_version = (user.session_version or 1) + 1
    user.failed_logins = 0
    user.locked_until = None
    login_throttle.forget_failures(user.id)
    codes.revoke_codes(user, codes.RESET_PASSWORD)


def change_email(user: User, new_address: Address, *, now: datetime | None = None) -> bool:
    """Move the account to a verified new address; False when another account took it."""
    other = find_user(new_address)
    if other is not None and other.id != user.id:
        return False
    # Another account may take the address at the same moment: the unique index decides,
    # inside a savepoint, and the loser is told it is taken (never a 500).
    try:
        with db.session.begin_nested():
            user.email = new_address.email
            user.email_key = new_address.key
            db.session.flush()
    except IntegrityError:
        db.session.refresh(user)
        return False
    user.email_verified_at = now or utcnow()
    codes.revoke_codes(user, codes.CHANGE_EMAIL, now=now)
    codes.revoke_codes(user, codes.RESET_PASSWORD, now=now)
    return True


def delete_account(user: User) -> None:
    """Remove the account, its codes and its API tokens (newsletter consent is separate)."""
    db.session.execute(delete(OneTimeCode).where(OneTimeCode.user_id == user.id))
    db.session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    # Mail stored for the account (codes, links, notices) goes with it; a message being sent
    # right now is left to its worker.
    db.session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.recipient_key == user.email_key, OutboxMessage.status != "sending"
        )
    )
    db.session.delete(user)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def account_data(user: User) -> dict[str, Any]:
    """Everything stored about the account's owner, for "download my data" (GDPR art. 15/20)."""
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email_key == user.email_key))
    tokens = db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all()
    return {
        "account": {
            "email": user.email,
            "language": user.language,
            "staff": bool(user.is_staff),
            "created_at": _iso(user.created_at),
            "email_verified_at": _iso(user.email_verified_at),
            "last_login_at": _iso(user.last_login_at),
        },
        "newsletter": None
        if subscriber is None
        else {
            "email": subscriber.email,
            "name": subscriber.name,
            "language": subscriber.language,
            "status": str(subscriber.status),
            "consent_at": _iso(subscriber.consent_at),
            "consent_ip": subscriber.consent_ip,
            "consent_page": subscriber.consent_page,
            "consent_source": subscriber.consent_source,
            "confirmed_at": _iso(subscriber.confirmed_at),
            "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        },
        "api_tokens": [
            {
                "name": token.name,
                "created_at": _iso(token.created_at),
                "last_used_at": _iso(token.last_used_at),
                "revoked_at": _iso(token.revoked_at),
            }
            for token in tokens
        ],
    }


# --- Signed links -------------------------------------------------------------------------
# Each emailed code comes with a link naming the same code row: the link and the code are one
# thing, spent once. The token carries ids and a fingerprint of what it guards, never the
# address itself.


def verification_token(signer: TokenSigner, user: User, row: OneTimeCode) -> str:
    return signer.sign(
        VERIFY_EMAIL,
        {"u": user.id, "c": row.id, "f": signer.fingerprint("verify", user.email_key)},
    )


def reset_token(signer: TokenSigner, user: User, row: OneTimeCode) -> str:
    # Guards the address and the password hash: the link dies once the password changes.
    return signer.sign(
        RESET_PASSWORD,
        {
            "u": user.id,
            "c": row.id,
            "f": signer.fingerprint("reset", user.email_key, user.password_hash),
        },
    )


def change_email_token(signer: TokenSigner, user: User, row: OneTimeCode) -> str:
    return signer.sign(
        CHANGE_EMAIL,
        {
            "u": user.id,
            "c": row.id,
            "f": signer.fingerprint("change", user.email_key, (row.new_email or "").casefold()),
        },
    )


@dataclass(frozen=True)
class AccountLink:
    state: LinkState
    user: User | None = None
    row: OneTimeCode | None = None

    @property
    def ok(self) -> bool:
        return self.state == LinkState.OK


_PURPOSES = {
    codes.VERIFY_EMAIL: (VERIFY_EMAIL, "verify"),
    codes.RESET_PASSWORD: (RESET_PASSWORD, "reset"),
    codes.CHANGE_EMAIL: (CHANGE_EMAIL, "change"),
}


def _guarded_values(purpose: str, user: User, row: OneTimeCode) -> tuple[object, ...]:
    if purpose == codes.RESET_PASSWORD:
        return (user.email_key, user.password_hash)
    if purpose == codes.CHANGE_EMAIL:
        return (user.email_key, (row.new_email or "").casefold())
    return (user.email_key,)


def read_account_link(
    signer: TokenSigner, purpose: str, token: str, *, now: datetime | None = None
) -> AccountLink:
    """Turn an emailed link's token into its account and live code row, without spending it."""
    token_purpose, label = _PURPOSES[purpose]
    result = signer.verify(token_purpose, token)
    if result.invalid or not isinstance(result.data, dict):
        return AccountLink(LinkState.INVALID)
    user_id, row_id, fingerprint = (result.data.get(key) for key in ("u", "c", "f"))
    if not isinstance(user_id, int) or not isinstance(row_id, int):
        return AccountLink(LinkState.INVALID)
    if not isinstance(fingerprint, str):
        return AccountLink(LinkState.INVALID)
    user = db.session.get(User, user_id)
    row = db.session.get(OneTimeCode, row_id)
    if user is None or row is None or row.user_id != user.id or row.purpose != purpose:
        return AccountLink(LinkState.INVALID)
    if not signer.fingerprint_matches(fingerprint, label, *_guarded_values(purpose, user, row)):
        return AccountLink(LinkState.INVALID)
    if result.expired:
        return AccountLink(LinkState.EXPIRED, user)
    if not codes.code_row_is_live(row.id, purpose, now):
        expired = row.used_at is None and row.revoked_at is None
        return AccountLink(LinkState.EXPIRED if expired else LinkState.INVALID, user)
    return AccountLink(LinkState.OK, user, row)


def spend_account_link(link: AccountLink, *, now: datetime | None = None) -> bool:
    """Spend the code a link names; False if a concurrent request spent it first."""
    if not link.ok or link.row is None:
        return False
    return codes.spend_code_row(link.row.id, now=now) is not None

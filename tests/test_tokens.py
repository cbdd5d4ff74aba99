"""Signed tokens: one salt per purpose, max_age always enforced, key rotation through
SECRET_KEY_FALLBACKS, fingerprints of what they guard, no personal data inside."""

from __future__ import annotations

import base64
import json
import secrets

import itsdangerous.timed
import pytest

from newsletter.config import CHANGE_EMAIL, RESET_PASSWORD, UNSUBSCRIBE, VERIFY_EMAIL
from newsletter.domain.tokens import TokenSigner
from tests.support.accounts import (
    OTHER_STRONG_PASSWORD,
    code_in,
    make_user,
    path_of,
    post_form,
)

OLD_KEY = "old-key-" + "a" * 40
NEW_KEY = "new-key-" + "b" * 40
DATA = {"u": 7, "c": 9, "f": "0123456789abcdef"}


def test_a_token_signed_with_an_old_key_still_verifies_after_rotation():
    token = TokenSigner(OLD_KEY).sign(RESET_PASSWORD, DATA)
    rotated = TokenSigner(NEW_KEY, [OLD_KEY])
    result = rotated.verify(RESET_PASSWORD, token)
    assert result.valid and result.data == DATA


def test_a_token_signed_with_a_random_key_does_not_verify():
    token = TokenSigner(secrets.token_urlsafe(32)).sign(RESET_PASSWORD, DATA)
    result = TokenSigner(NEW_KEY, [OLD_KEY]).verify(RESET_PASSWORD, token)
    assert result.invalid and result.data is None


def test_new_tokens_are_signed_with_the_current_key():
    token = TokenSigner(NEW_KEY, [OLD_KEY]).sign(VERIFY_EMAIL, DATA)
    assert TokenSigner(NEW_KEY).verify(VERIFY_EMAIL, token).valid
    # Not with the old key: once the fallback is dropped, nothing signed since depends on it.
    assert TokenSigner(OLD_KEY).verify(VERIFY_EMAIL, token).invalid


def test_each_purpose_has_its_own_salt():
    signer = TokenSigner(NEW_KEY)
    token = signer.sign(VERIFY_EMAIL, DATA)
    assert signer.verify(RESET_PASSWORD, token).invalid
    assert signer.verify(CHANGE_EMAIL, token).invalid
    assert len({VERIFY_EMAIL.salt, RESET_PASSWORD.salt, CHANGE_EMAIL.salt}) == 3


def test_max_age_is_always_enforced(monkeypatch):
    signer = TokenSigner(NEW_KEY)
    real_time = itsdangerous.timed.time.time
    eleven_minutes_ago = real_time() - 11 * 60
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: eleven_minutes_ago)
    token = signer.sign(RESET_PASSWORD, DATA)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    result = signer.verify(RESET_PASSWORD, token)
    assert result.expired and not result.valid
    # The same age is fine for a purpose that lives longer.
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: eleven_minutes_ago)
    token = signer.sign(VERIFY_EMAIL, DATA)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    assert signer.verify(VERIFY_EMAIL, token).valid



def test_unsubscribe_tokens_never_expire_but_still_need_a_good_signature(monkeypatch):
    signer = TokenSigner(NEW_KEY)
    real_time = itsdangerous.timed.time.time
    ten_years_ago = real_time() - 10 * 366 * 86400
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: ten_years_ago)
    token = signer.sign(UNSUBSCRIBE, DATA)
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    result = signer.verify(UNSUBSCRIBE, token)
    assert result.valid and result.data == DATA
    assert TokenSigner(OLD_KEY).verify(UNSUBSCRIBE, token).invalid


@pytest.mark.parametrize(
    "token",
    ["", "x", "a.b.c", "." * 50, "é" * 10, "a" * 5000, None, 12],
)
def test_garbage_tokens_are_invalid_not_errors(token):
    assert TokenSigner(NEW_KEY).verify(RESET_PASSWORD, token).invalid


def test_tampered_tokens_are_invalid():
    signer = TokenSigner(NEW_KEY)
    token = signer.sign(RESET_PASSWORD, DATA)
    payload, rest = token.split(".", 1)
    forged = base64.urlsafe_b64encode(json.dumps({**DATA, "u": 1}).encode()).decode().rstrip("=")
    assert signer.verify(RESET_PASSWORD, f"{forged}.{rest}").invalid
    assert signer.verify(
        RESET_PASSWORD, token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    ).invalid


def test_fingerprints_survive_rotation_and_fail_with_other_keys():
    fingerprint = TokenSigner(OLD_KEY).fingerprint("reset", "a@example.org", "hash1")
    assert TokenSigner(NEW_KEY, [OLD_KEY]).fingerprint_matches(
        fingerprint, "reset", "a@example.org", "hash1"
    )
    assert not TokenSigner(NEW_KEY).fingerprint_matches(
        fingerprint, "reset", "a@example.org", "hash1"
    )
    assert not TokenSigner(NEW_KEY, [OLD_KEY]).fingerprint_matches(
        fingerprint, "reset", "a@example.org", "hash2"
    )


# --- through the application: links emailed before a key rotation ------------------------


def reset_mailed_before_rotation(make_app, mailbox):
    """An app signing with OLD_KEY emails a password reset (link and code) to an account;
    returns the one message that arrived."""
    from newsletter.scheduling.worker import Worker

    before = make_app(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[])
    make_user(before, "rotate@example.org")
    before.test_client().post(
        "/api/v1/account/password-reset", json={"email": "rotate@example.org"}
    )
    Worker(before, name="rotation").run(until_idle=True)
    [message] = mailbox.wait_for(1)
    return message


def test_emailed_reset_link_and_code_survive_a_key_rotation(make_app, mailbox):
    message = reset_mailed_before_rotation(make_app, mailbox)
    [link] = message.links()
    # The payload names ids and a fingerprint, never the address.
    token = path_of(link).split("token=")[1].split("&")[0]
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert "rotate" not in decoded and "@" not in decoded

    stranger = make_app(SECRET_KEY=secrets.token_urlsafe(32), SECRET_KEY_FALLBACKS=[])
    assert stranger.test_client().get(path_of(link)).status_code == 400

    after = make_app(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY])
    client = after.test_client()
    assert client.get(path_of(link)).status_code == 200
    response = post_form(
        client,
        path_of(link),
        "/account/reset/confirm",
        {"token": token, "password": OTHER_STRONG_PASSWORD},
    )
    assert response.status_code == 303
    # The code from the same email was spent with the link.
    response = client.post(
        "/api/v1/account/password-reset/confirm",
        json={
            "email": "rotate@example.org",
            "code": code_in(message),
            "password": OTHER_STRONG_PASSWORD,
        },
    )
    assert response.status_code == 400


def test_emailed_code_survives_a_key_rotation(make_app, mailbox):
    code = code_in(reset_mailed_before_rotation(make_app, mailbox))
    after = make_app(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY])
    response = after.test_client().post(
        "/api/v1/account/password-reset/confirm",
        json={"email": "rotate@example.org", "code": code, "password": OTHER_STRONG_PASSWORD},
    )
    assert response.status_code == 200

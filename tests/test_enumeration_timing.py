"""Issue 11, finding 3: asking for a reset code, asking for a new verification code, and trying a
wrong verification or reset code take as long for a registered address as for an unknown one
(the code row, outbox insert, counted try and commit happened only for registered ones).
A timing comparison asked for by the issue as a security property: median of 50 against 50,
through real HTTP, within 0.2 ms."""

from __future__ import annotations

import os
import statistics
import time

import pytest

from newsletter.delivery.accounts import code_keys
from newsletter.domain import codes
from newsletter.domain.accounts import find_user
from newsletter.domain.addresses import normalise_address
from newsletter.domain.passwords import hash_password
from newsletter.extensions import db
from newsletter.models import User, utcnow
from tests.support.live import HttpClient
from tests.support.processes import gunicorn


@pytest.fixture
def app_config(app_config):
    app_config["ACCOUNT_RATE_LIMIT"] = "100000/minute"
    return app_config


# The server and the measuring client on different CPUs, as an attacker on another machine
# would be: work the server does after a response must not hold up the client reading it on
# a shared, busy CPU (on loopback that is the one thing that could, not the network).
_CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPUS = set(_CPUS[1:]) or set(_CPUS)
CLIENT_CPUS = {_CPUS[0]}


@pytest.fixture
def gunicorn_server(app, database_url, smtp_sink, tmp_path):
    """The app in its own process (gunicorn, one sync worker): the measuring client must not
    share an interpreter with the server."""
    with gunicorn(
        database_url, smtp_sink.port, tmp_path, workers=1,
        env={"NEWSLETTER_RATELIMIT_ENABLED": "false"},
        preexec_fn=lambda: os.sched_setaffinity(0, SERVER_CPUS),
    ) as url:
        yield url


SAMPLES = 50  # the median of 50 against 50, as the issue asks
TRIES = 5  # each sample: the fastest of 5 requests (distinct addresses); noise only adds
BOUND_MS = 0.2  # registered vs unknown medians, as the issue asks
# On a busy shared machine scheduling noise moves the medians of 50 by a few tenths of a ms
# either way (CI once saw +0.25, +0.25, -0.21 in three runs), while a real leak shows in every
# run (1 to 13 ms before the fix). So up to 5 runs, each with fresh addresses (a repeated
# address would meet the cooldown and do less work), and after each the medians of every
# sample so far: more samples narrow the noise, never a leak.
RUNS = 5
ADDRESSES = SAMPLES * TRIES * RUNS


def _assert_same_time(
    http: HttpClient, path: str, registered: list[dict], unknown: list[dict], status: int
) -> None:
    per_run = SAMPLES * TRIES
    samples: dict[str, list[float]] = {"registered": [], "unknown": []}
    seen = []
    for run in range(RUNS):
        part = slice(run * per_run, (run + 1) * per_run)
        for kind, values in _samples(http, path, registered[part], unknown[part], status).items():
            samples[kind].extend(values)
        medians = {kind: statistics.median(values) * 1000 for kind, values in samples.items()}
        print(f"{path} medians (ms) of {len(samples['unknown'])} samples each: {medians}")
        seen.append(medians)
        if abs(medians["registered"] - medians["unknown"]) < BOUND_MS:
            return
    pytest.fail(
        f"{path}: registered and unknown addresses differ by more than {BOUND_MS} ms: {seen}"
    )


def _samples(
    http: HttpClient, path: str, registered: list[dict], unknown: list[dict], status: int
) -> dict[str, list[float]]:
    """Answer times (s) of ``path`` for each series of payloads, through real HTTP."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, CLIENT_CPUS)
    try:
        return _measure(http, path, registered, unknown, status)
    finally:
        os.sched_setaffinity(0, everywhere)


def _measure(
    http: HttpClient, path: str, registered: list[dict], unknown: list[dict], status: int
) -> dict[str, list[float]]:
    for payload in unknown[:10]:  # warm up (imports, caches, pooled connections)
        http.post(path, json={**payload, "email": "warm@example.org"})
    timings: dict[str, list[float]] = {"registered": [], "unknown": []}
    # Interleaved in ABBA order, so load on the machine hits both series alike. Before each
    # request, an untimed one to the single sync worker returns only once the work done after
    # the previous response has finished, so no timed request waits for another's work.
    for number in range(SAMPLES):
        chunk = slice(number * TRIES, (number + 1) * TRIES)
        pair = [("registered", registered[chunk]), ("unknown", unknown[chunk])]
        for kind, payloads in pair if number % 2 else pair[::-1]:
            fastest = float("inf")
            for payload in payloads:
                assert http.get("/healthz").status == 200
                time.sleep(0.005)
                start = time.perf_counter()
                response = http.post(path, json=payload)
                fastest = min(fastest, time.perf_counter() - start)
                assert response.status == status, (kind, response.status, response.text)
            timings[kind].append(fastest)
    return timings


def _members(app, prefix: str, *, verified: bool = True) -> list[str]:
    """Accounts made straight in the database (one password hash for all, to save time)."""
    addresses = [f"{prefix}{n}@example.org" for n in range(ADDRESSES)]
    with app.app_context():
        password_hash = hash_password(PASSWORD)
        for address in addresses:
            parsed = normalise_address(address)
            db.session.add(
                User(
                    email=parsed.email,
                    email_key=parsed.key,
                    password_hash=password_hash,
                    language="en",
                    is_staff=False,
                    email_verified_at=utcnow() if verified else None,
                    session_version=1,
                    failed_logins=0,
                )
            )
        db.session.commit()
    return addresses


def _strangers(prefix: str) -> list[str]:
    return [f"{prefix}-stranger{n}@example.org" for n in range(ADDRESSES)]


def _issue_codes(app, addresses: list[str], purpose: str) -> list[str]:
    """A live code for each address; returns a wrong code for each (never its live code)."""
    wrong = []
    with app.app_context():
        for address in addresses:
            issued = codes.issue_code(
                find_user(normalise_address(address)), purpose, code_keys()[0]
            )
            wrong.append("111111" if issued.code != "111111" else "222222")
        db.session.commit()
    return wrong


PASSWORD = "Correct-Horse-Battery-9"  # noqa: S105
NEW_PASSWORD = "Purple#Giraffe-Mountain-97"  # noqa: S105


def test_reset_request_takes_as_long_for_registered_and_unknown_addresses(app, gunicorn_server):
    registered = [{"email": address} for address in _members(app, "member")]
    unknown = [{"email": address} for address in _strangers("reset")]
    _assert_same_time(
        HttpClient(gunicorn_server), "/api/v1/account/password-reset", registered, unknown, 202
    )


def test_verify_resend_takes_as_long_for_registered_and_unknown_addresses(app, gunicorn_server):
    # Registered and still unverified: the only addresses a new code is issued for.
    registered = [{"email": a} for a in _members(app, "pending", verified=False)]
    unknown = [{"email": address} for address in _strangers("resend")]
    _assert_same_time(
        HttpClient(gunicorn_server), "/account/verify/resend", registered, unknown, 202
    )


def test_wrong_verify_code_takes_as_long_for_registered_and_unknown_addresses(app, gunicorn_server):
    # Registered with a live code: the try is counted against it.
    addresses = _members(app, "pending", verified=False)
    wrong = _issue_codes(app, addresses, codes.VERIFY_EMAIL)
    registered = [{"email": a, "code": c} for a, c in zip(addresses, wrong, strict=True)]
    unknown = [{"email": a, "code": "111111"} for a in _strangers("verify")]
    _assert_same_time(HttpClient(gunicorn_server), "/account/verify", registered, unknown, 400)


def test_wrong_reset_code_takes_as_long_for_registered_and_unknown_addresses(app, gunicorn_server):
    addresses = _members(app, "member")
    wrong = _issue_codes(app, addresses, codes.RESET_PASSWORD)
    registered = [
        {"email": a, "code": c, "password": NEW_PASSWORD}
        for a, c in zip(addresses, wrong, strict=True)
    ]
    unknown = [
        {"email": a, "code": "111111", "password": NEW_PASSWORD} for a in _strangers("confirm")
    ]
    _assert_same_time(
        HttpClient(gunicorn_server),
        "/api/v1/account/password-reset/confirm",
        registered,
        unknown,
        400,
    )

"""The password policy (each rule named), hashing with argon2id, and the configured policy."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters

from newsletter.config import PASSWORD_MAX_LENGTH
from newsletter.domain.passwords import (
    PasswordRejected,
    broken_rules,
    check_password_policy,
    common_passwords,
    hash_password,
    verify_password,
)

EMAIL = "reporter@example.org"


def rule_codes(password, policy="site", email=EMAIL) -> set[str]:
    return {rule.code for rule in broken_rules(password, email=email, policy=policy)}


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Ab1!cdefgh", "min_length"),
        ("Ab1! cdefghijk", "no_spaces"),
        ("Ab1!\tcdefghijk", "no_spaces"),
        ("AB1!CDEFGHIJK", "lowercase"),
        ("ab1!cdefghijk", "uppercase"),
        ("Ab!cdefghijkl", "digit"),
        ("Ab1cdefghijkl", "symbol"),
        ("John!20130605at1753", "common"),  # in the shipped list, whatever its case
        ("Reporter-2024!x", "contains_email"),
        ("xREPORTER#99yyy", "contains_email"),
        ("Ab1!" + "x" * (PASSWORD_MAX_LENGTH - 3), "max_length"),
        ("", "required"),
        (None, "required"),
        (12345678901234, "required"),
    ],
)
def test_site_policy_names_exactly_the_broken_rule(password, rule):
    assert rule_codes(password) == {rule}


def test_site_policy_names_every_broken_rule_at_once():
    assert rule_codes("reporter") == {
        "min_length",
        "uppercase",
        "digit",
        "symbol",
        "contains_email",
    }
    assert rule_codes("password") >= {"min_length", "common"}


def test_site_policy_accepts_a_good_password_and_keeps_it_whole():
    password = "Ab1!" + "x" * (PASSWORD_MAX_LENGTH - 4)
    assert check_password_policy(password, email=EMAIL) == password
    assert len(password) == PASSWORD_MAX_LENGTH


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("correct horse", "min_length"),  # 13 < 15
        ("manchesterunited", "common"),
        ("my reporter passphrase", "contains_email"),
        ("a" * (PASSWORD_MAX_LENGTH + 1), "max_length"),
        ("", "required"),
    ],
)
def test_nist_policy_names_exactly_the_broken_rule(password, rule):
    assert rule_codes(password, policy="nist") == {rule}


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",  # spaces, no composition
        "alllowercaseletterswithnothingelse",
        "pâte à crêpes du dimanche matin",  # Unicode
        "日本語のパスフレーズはとても長いです",
        "🦊🦊 renard roux dans la neige 🦊",
    ],
)
def test_nist_policy_accepts_any_characters_without_composition_rules(password):
    assert rule_codes(password, policy="nist") == set()
    # The same passwords break composition rules under the site policy.
    assert rule_codes(password, policy="site")


def test_short_local_parts_are_not_refused_everywhere():
    assert rule_codes("Jo-Correct-Horse-42", email="jo@example.org") == set()
    assert "contains_email" in rule_codes("Smithson-Horse-42!", email="jo.smithson@example.org")


def test_the_shipped_list_holds_at_least_ten_thousand_passwords():
    passwords = common_passwords()
    assert len(passwords) >= 10_000
    assert {"123456", "password", "qwerty"} <= passwords


def test_hashes_are_argon2id_with_owasp_parameters_or_stronger():
    stored = hash_password("Correct-Horse-42-Battery")
    assert stored.startswith("$argon2id$")
    parameters = extract_parameters(stored)
    # OWASP: m=19 MiB, t=2, p=1 at least.
    assert parameters.memory_cost >= 19 * 1024
    assert parameters.time_cost >= 2
    assert parameters.parallelism >= 1
    assert hash_password("Correct-Horse-42-Battery") != stored  # salted


def test_passwords_are_never_truncated():
    long_password = "Ab1!" + "x" * (PASSWORD_MAX_LENGTH - 5) + "y"
    stored = hash_password(long_password)
    assert verify_password(stored, long_password).matches
    # Differs only in the last character, far beyond bcrypt's 72 bytes.
    assert not verify_password(stored, long_password[:-1] + "z").matches
    assert not verify_password(stored, long_password[:-1]).matches


def test_unicode_is_normalised_the_same_way_when_set_and_when_checked():
    stored = hash_password("Café-Horse-42-Battery")  # precomposed é
    assert verify_password(stored, "Cafe\u0301-Horse-42-Battery").matches  # e + combining accent
    assert verify_password(hash_password("Ｃorrect-Horse-42"), "Correct-Horse-42").matches


@pytest.mark.parametrize("garbage", [None, "", "not-a-hash", "$argon2id$v=19$m=1$broken"])
def test_verification_of_bad_hashes_and_inputs_is_false_not_an_error(garbage):
    assert not verify_password(garbage, "Correct-Horse-42-Battery").matches
    assert not verify_password(hash_password("Correct-Horse-42-Battery"), garbage).matches


def test_rejection_lists_every_rule_in_english():
    with pytest.raises(PasswordRejected) as caught:
        check_password_policy("short", email=EMAIL)
    assert "Use at least 12 characters." in str(caught.value)
    assert "Include a digit." in str(caught.value)


@pytest.fixture
def nist_app(app_config, app):
    app.config["PASSWORD_POLICY"] = "nist"
    return app


def test_the_configured_nist_policy_applies_to_registration(nist_app):
    client = nist_app.test_client()
    response = client.post(
        "/api/v1/account/register",
        json={"email": EMAIL, "password": "Ab1!cdefghijk"},  # fine for "site", short for NIST
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["rules"] == ["min_length"]
    response = client.post(
        "/api/v1/account/register",
        json={"email": EMAIL, "password": "correct horse battery staple"},
    )
    assert response.status_code == 202


def test_the_site_policy_is_the_default(app, client):
    assert app.config["PASSWORD_POLICY"] == "site"
    response = client.post(
        "/api/v1/account/register",
        json={"email": EMAIL, "password": "correct horse battery staple"},
    )
    assert response.status_code == 422
    assert set(response.get_json()["error"]["rules"]) == {
        "no_spaces",
        "uppercase",
        "digit",
        "symbol",
    }


def test_broken_rules_are_named_in_french_too(app, client):
    response = client.post(
        "/api/v1/account/register",
        json={"email": EMAIL, "password": "short"},
        headers={"Accept-Language": "fr"},
    )
    message = response.get_json()["error"]["fields"]["password"]
    assert "Utilisez au moins 12 caractères." in message
    assert "Ajoutez un chiffre." in message
    response = client.post(
        "/api/v1/account/register",
        json={"email": EMAIL, "password": "short"},
        headers={"Accept-Language": "en"},
    )
    assert "Use at least 12 characters." in response.get_json()["error"]["fields"]["password"]

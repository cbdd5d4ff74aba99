"""Password policy and hashing.

Two policies (``PASSWORD_POLICY``): ``site``, the site's published rule (at least 12 characters,
no spaces, upper- and lower-case letters, digits and symbols), and ``nist`` (NIST SP 800-63B
rev. 4, OWASP ASVS 5 6.2: at least 15 characters, any characters, no composition rules). Both
refuse the shipped list of common passwords and passwords containing the address's local part,
accept up to 128 characters and never truncate. Passwords are NFKC-normalised before checking
and hashing (SP 800-63B 3.1.1.2), so the same passphrase typed on two keyboards matches.

Hashes are argon2id (argon2-cffi); ``verify_password`` says when a stored hash was made with
older parameters so the caller can store a fresh one at login.
"""

from __future__ import annotations

import contextlib
import gzip
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..config import (
    ARGON2_MEMORY_KIB,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    PASSWORD_POLICIES,
)

# Pieces of the local part shorter than this are too common to refuse ("jo" in "jo.smith").
MIN_LOCAL_PART_PIECE = 4
LOCAL_PART_SEPARATORS = ".-_+"


def N_(message: str) -> str:  # noqa: N802 - the conventional marker Babel extracts
    """Mark a message for translation; the web layer translates it when showing it."""
    return message


# Each rule's message, in English (the msgid); ``%(min)d`` and ``%(max)d`` are filled in.
RULE_MESSAGES = {
    "required": N_("Enter a password."),
    "min_length": N_("Use at least %(min)d characters."),
    "max_length": N_("Use at most %(max)d characters."),
    "no_spaces": N_("Do not use spaces."),
    "lowercase": N_("Include a lower-case letter."),
    "uppercase": N_("Include an upper-case letter."),
    "digit": N_("Include a digit."),
    "symbol": N_("Include a symbol, such as ! ? # or *."),
    "common": N_("This password is too common: it appears in lists of leaked passwords."),
    "contains_email": N_("Do not use your email address in your password."),
}


@dataclass(frozen=True)
class BrokenRule:
    """One rule a password breaks: ``code`` names it, ``message`` says it (English msgid)."""

    code: str
    message: str
    params: dict[str, int]

    def english(self) -> str:
        return self.message % self.params


class PasswordRejected(ValueError):
    """A password that breaks the policy; ``rules`` lists every broken rule."""

    def __init__(self, rules: list[BrokenRule]) -> None:
        super().__init__(" ".join(rule.english() for rule in rules))
        self.rules = rules


def normalise_password(password: str) -> str:
    """NFKC form, as SP 800-63B asks for Unicode passwords; nothing is stripped or cut."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list (20,000 lower-cased passwords, from Django; see data/NOTICE)."""
    data = resources.files("newsletter").joinpath("data/common-passwords.txt.gz").read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip())


def _local_part_pieces(email: str | None) -> list[str]:
    if not email or "@" not in email:
        return []
    local = email.rpartition("@")[0].casefold()
    pieces = [local] if len(local) >= 3 else []
    current = ""
    for ch in local + ".":
        if ch in LOCAL_PART_SEPARATORS:
            if len(current) >= MIN_LOCAL_PART_PIECE and current != local:
                pieces.append(current)
            current = ""
        else:
            current += ch
    return pieces


def _rule(code: str, **params: int) -> BrokenRule:
    return BrokenRule(code, RULE_MESSAGES[code], params)


def broken_rules(password: object, *, email: str | None, policy: str = "site") -> list[BrokenRule]:
    """Every rule ``password`` breaks under ``policy`` (empty when it is acceptable)."""
    if policy not in PASSWORD_POLICIES:
        raise ValueError(f"unknown password policy {policy!r}")
    if not isinstance(password, str) or password == "":
        return [_rule("required")]
    password = normalise_password(password)
    rules: list[BrokenRule] = []
    minimum = PASSWORD_MIN_LENGTH[policy]
    if len(password) < minimum:
        rules.append(_rule("min_length", min=minimum))
    if len(password) > PASSWORD_MAX_LENGTH:
        rules.append(_rule("max_length", max=PASSWORD_MAX_LENGTH))
    if policy == "site":
        if any(ch.isspace() for ch in password):
            rules.append(_rule("no_spaces"))
        if not any(ch.islower() for ch in password):
            rules.append(_rule("lowercase"))
        if not any(ch.isupper() for ch in password):
            rules.append(_rule("uppercase"))
        if not any(ch.isdigit() for ch in password):
            rules.append(_rule("digit"))
        if not any(not ch.isalnum() and not ch.isspace() for ch in password):
            rules.append(_rule("symbol"))
    # The list is lower-cased: "Password1234" is as guessable as "password1234".
    if password.lower() in common_passwords() or password.strip().lower() in common_passwords():
        rules.append(_rule("common"))
    folded = password.casefold()
    if any(piece in folded for piece in _local_part_pieces(email)):
        rules.append(_rule("contains_email"))
    return rules


def check_password_policy(password: object, *, email: str | None, policy: str = "site") -> str:
    """The password, NFKC-normalised, or ``PasswordRejected`` naming every broken rule."""
    rules = broken_rules(password, email=email, policy=policy)
    if rules:
        raise PasswordRejected(rules)
    assert isinstance(password, str)
    return normalise_password(password)


def password_hasher(
    time_cost: int = ARGON2_TIME_COST,
    memory_kib: int = ARGON2_MEMORY_KIB,
    parallelism: int = ARGON2_PARALLELISM,
) -> PasswordHasher:
    """An argon2id hasher; the defaults are the parameters every stored hash should have."""
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


_HASHER = password_hasher()
# Verified against when no account matches, so a login for an unknown address costs the same.
_DUMMY_HASH = _HASHER.hash("not a real password: equalises timing")


def hash_password(password: str) -> str:
    """An argon2id hash of the (NFKC-normalised, never truncated) password."""
    return _HASHER.hash(normalise_password(password))


@dataclass(frozen=True)
class PasswordCheck:
    matches: bool
    # Set when the password matched a hash made with other parameters: store this one instead.
    new_hash: str | None = None


def verify_password(password_hash: str | None, password: object) -> PasswordCheck:
    """Check ``password`` against a stored hash; ``None`` hash burns the same time and fails."""
    if not isinstance(password, str) or not password or len(password) > 4 * PASSWORD_MAX_LENGTH:
        return PasswordCheck(False)
    candidate = normalise_password(password)
    if password_hash is None:
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY_HASH, candidate + "\0")
        return PasswordCheck(False)
    try:
        _HASHER.verify(password_hash, candidate)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return PasswordCheck(False)
    if _HASHER.check_needs_rehash(password_hash):
        return PasswordCheck(True, new_hash=_HASHER.hash(candidate))
    return PasswordCheck(True)

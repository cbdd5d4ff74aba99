"""Email addresses: validated and normalised once, with a case-folded key for uniqueness."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from ..config import MAX_EMAIL_LENGTH
from .wording import ExplainedError, translatable


class InvalidAddress(ExplainedError):
    """The address cannot be used; ``detail`` keeps email-validator's precise (English) reason."""

    def __init__(self, template: str, detail: str | None = None, **params: object) -> None:
        super().__init__(template, **params)
        self.detail = detail


@dataclass(frozen=True)
class Address:
    email: str  # normalised, as we will write it on envelopes
    key: str  # case-folded, for lookups and uniqueness


def address_key(email: str) -> str:
    """The lookup key of an already normalised address."""
    return email.casefold()


def normalise_address(raw: object) -> Address:
    """Validate and normalise an address typed by someone (internationalised ones accepted)."""
    if not isinstance(raw, str):
        raise InvalidAddress(translatable("Enter an email address."))
    candidate = raw.strip()
    if not candidate:
        raise InvalidAddress(translatable("Enter an email address."))
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidAddress(
            translatable("An email address has at most %(count)d characters."),
            count=MAX_EMAIL_LENGTH,
        )
    if any(ch in candidate for ch in "\r\n\0"):
        raise InvalidAddress(translatable("An email address cannot contain line breaks."))
    try:
        info = validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(
            translatable("This email address is not valid."), detail=str(exc)
        ) from None
    return Address(email=info.normalized, key=address_key(info.normalized))

"""The fault suite's tally: lost, duplicated, and mail to anybody never expected fails the case."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.support.fault_counts import FAULT_COUNTS, tally


@pytest.fixture(autouse=True)
def _summary_keeps_only_real_cases():
    """These made-up cases stay out of the printed fault table."""
    before = len(FAULT_COUNTS)
    yield
    del FAULT_COUNTS[before:]


def arrived(*recipients: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(rcpt_tos=[address]) for address in recipients]


def test_lost_and_duplicated_are_counted_whatever_the_case_of_the_address():
    expected = ["a@example.org", "b@example.org", "c@example.org"]
    messages = arrived("A@example.org", "a@example.org", "b@example.org")
    assert tally("counting", expected, messages) == (1, 1)


def test_mail_to_an_address_never_expected_fails_the_case():
    with pytest.raises(AssertionError, match="stranger@example.org"):
        tally("strays", ["a@example.org"], arrived("a@example.org", "stranger@example.org"))

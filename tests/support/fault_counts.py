"""Lost and duplicated counts of the delivery fault cases (issue 10), gathered while the tests
run and printed in pytest's terminal summary (``tests/conftest.py``): a passing test's own
prints are swallowed, so CI output would never show them otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.digests import recipients_count


@dataclass(frozen=True)
class FaultCount:
    scenario: str
    sent: int  # messages the SMTP server accepted for the scenario's recipients
    lost: int
    duplicated: int
    note: str = ""


FAULT_COUNTS: list[FaultCount] = []


def record_fault_count(
    scenario: str, *, sent: int, lost: int, duplicated: int, note: str = ""
) -> FaultCount:
    """Keep one scenario's counts for the terminal summary; also printed (seen with ``-s``)."""
    count = FaultCount(scenario, sent, lost, duplicated, note)
    FAULT_COUNTS.append(count)
    print(f"\n[fault] {summary_line(count)}")
    return count


def tally(case: str, expected: list[str], messages, note: str = "") -> tuple[int, int]:
    """Lost and duplicated counts at the SMTP server, kept for the terminal summary. Mail to
    anybody outside ``expected`` is neither: it is recorded in the note and fails the case."""
    counts = recipients_count(messages)
    wanted = {address.casefold() for address in expected}
    lost = len(wanted - set(counts))
    duplicated = sum(count - 1 for address, count in counts.items() if address in wanted)
    sent = sum(count for address, count in counts.items() if address in wanted)
    strays = sorted(address for address in counts if address not in wanted)
    note = f"{len(wanted)} recipients" + (f", {note}" if note else "")
    if strays:
        note += f", {len(strays)} addresses never expected"
    record_fault_count(case, sent=sent, lost=lost, duplicated=duplicated, note=note)
    assert not strays, f"{case}: mail to addresses never expected: {strays[:5]}"
    return lost, duplicated


def summary_line(count: FaultCount) -> str:
    line = f"{count.scenario}: sent={count.sent} lost={count.lost} duplicated={count.duplicated}"
    return f"{line} ({count.note})" if count.note else line


def summary_table(counts: list[FaultCount]) -> list[str]:
    """One aligned line per scenario: scenario, sent, lost, duplicated, note."""
    rows = [("scenario", "sent", "lost", "duplicated", "note")]
    rows += [(c.scenario, str(c.sent), str(c.lost), str(c.duplicated), c.note) for c in counts]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(widths[i]) for i, cell in enumerate(row[1:4], 1)]
            + [row[4]]
        ).rstrip()
        for row in rows
    ]

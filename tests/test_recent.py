"""The recent-answers cache that makes a retried call (same decision id) get its first answer:
bounded in entries and in the modified input it holds, newest kept."""

from __future__ import annotations

from staso.models import GuardResult
from staso.recent import RecentResults


def result(i: int, modified: dict[str, str] | None = None) -> GuardResult:
    return GuardResult(action="modify" if modified else "allow", decision_id=f"d{i}",
                       tool_name="t", modified_input=modified)


def test_a_retry_gets_the_answer_it_was_given() -> None:
    recent = RecentResults()
    first = result(1)
    recent.put("d1", first)
    assert recent.get("d1") is first
    assert recent.get("d2") is None


def test_large_modified_inputs_are_bounded_by_their_size_newest_kept() -> None:
    recent = RecentResults(limit=10_000, chars=4_000_000)
    megabyte = "x" * 1_000_000
    for i in range(50):  # 50 MB of redacted inputs offered
        recent.put(f"d{i}", result(i, {"body": megabyte}))
    kept = [i for i in range(50) if recent.get(f"d{i}") is not None]
    assert kept == [46, 47, 48, 49]  # 4 MB held: the newest four
    # small answers are not pushed out by one large one beyond the budget
    for i in range(100, 200):
        recent.put(f"d{i}", result(i))
    assert recent.get("d150") is not None and recent.get("d49") is not None


def test_the_entry_limit_holds_and_one_oversized_answer_is_still_kept() -> None:
    recent = RecentResults(limit=3, chars=10)
    for i in range(5):
        recent.put(f"d{i}", result(i))
    assert [recent.get(f"d{i}") is not None for i in range(5)] == [False, False, True, True, True]
    recent.put("big", result(9, {"body": "y" * 100}))  # over the budget alone: kept, alone
    assert recent.get("big") is not None and recent.get("d4") is None

"""A short chaos run in CI (benchmarks/chaos.py): 8 visitors on a 4-slot SmolLM2-135M for 40 s with random Stop,
hang-ups, conversation switches (evictions to RAM), edits, deletions and one deliberate crash of the model's
decode thread. The invariants are the script's: no unexpected stop but after the crash, every greedy answer the
greedy answer to its own prompt (tests/greedy.py), no wait beyond the queue timeout, RSS and the KV RAM store
within their budgets."""

import pytest

from benchmarks.chaos import run

pytestmark = pytest.mark.slow


def test_eight_visitors_a_crash_and_every_kind_of_interruption_break_no_invariant(registry):
    report = run(registry, "smollm2-135m-instruct", visitors=8, slots=4, seconds=40, seed=3, kv_ram_mb=4)
    assert not report.violations, report.violations
    events = report.events
    assert events["killed"] == 1 and report.completed
    assert events["stop:cancelled"] + events["stop:stop"] + events["stop:length"] > 0 and events["left"] > 0
    assert events["edited"] > 0 and events["deleted"] > 0

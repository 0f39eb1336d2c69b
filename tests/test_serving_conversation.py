"""Pure conversation helpers: history fitting in chunks, the template-leak guard, message validation."""

from serving.conversation import LeakGuard, drop_oldest, fit_history, strip_template_tokens, validate_messages


def chat(n_turns: int, size: int = 10) -> list[dict]:
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}" + "x" * (size - 1)}
             for i in range(n_turns)]
    return [{"role": "system", "content": "S"}, *turns]


def chars(messages: list[dict]) -> int:
    return sum(len(m["content"]) for m in messages)


def test_fit_history_keeps_everything_that_fits():
    messages = chat(5)
    assert fit_history(messages, chars, budget=1000).messages == messages


def test_fit_history_drops_oldest_in_chunks_keeping_system_and_latest():
    messages = chat(9)  # system + 9 turns of 10 chars
    trimmed = fit_history(messages, chars, budget=60, chunk=4)
    assert trimmed.dropped == 4  # one chunk: 1 + 5 * 10 = 51 <= 60
    assert trimmed.messages[0]["role"] == "system"
    assert trimmed.messages[1] == messages[5] and trimmed.messages[1]["role"] == "user"
    assert trimmed.messages[-1] == messages[-1]


def test_fit_history_is_sticky_so_the_prefix_stays_stable():
    messages = chat(9)
    first = fit_history(messages, chars, budget=60, chunk=4)
    longer = messages + [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    again = fit_history(longer, chars, budget=80, already_dropped=first.dropped)
    assert again.dropped == first.dropped
    assert again.messages[: len(first.messages)] == first.messages


def test_fit_history_reports_a_latest_message_that_cannot_fit():
    messages = chat(3) + [{"role": "user", "content": "y" * 500}]
    assert fit_history(messages, chars, budget=100) is None


def test_drop_oldest_never_starts_with_an_answer():
    trimmed = drop_oldest(chat(7), 1)
    assert trimmed.messages[1]["role"] == "user" and trimmed.dropped == 2


def test_leak_guard_stops_at_a_turn_end_split_across_chunks():
    guard, shown = LeakGuard(), ""
    for piece in ["Your order ", "ships today.<", "|eot", "_id|>", "<|start_header_id|>user"]:
        shown += guard.feed(piece)
    shown += guard.flush()
    assert shown == "Your order ships today." and guard.stopped


def test_leak_guard_removes_other_template_tokens_and_keeps_ordinary_angle_brackets():
    guard, shown = LeakGuard(), ""
    for piece in ["a <b> c ", "<|reserved_special_", "token_7|> d <", "|"]:
        shown += guard.feed(piece)
    shown += guard.flush()
    assert shown == "a <b> c  d <|" and not guard.stopped
    assert strip_template_tokens("x<|eot_id|>y<|python_tag|>") == "xy"


def test_validate_messages_names_the_problem():
    ok = [{"role": "user", "content": "hi"}]
    assert validate_messages(ok, 100) is None
    assert "empty" in validate_messages([{"role": "user", "content": "  "}], 100)
    assert "limit is 5" in validate_messages([{"role": "user", "content": "toolong"}], 5)
    assert "role" in validate_messages([{"role": "bot", "content": "x"}], 100)
    assert "last message" in validate_messages([*ok, {"role": "assistant", "content": "x"}], 100)


def test_leak_guard_stops_at_chatml_markers():
    for marker in ("<|im_end|>", "<|im_start|>", "<|endoftext|>"):
        guard = LeakGuard()
        shown = guard.feed("Done." + marker[:5]) + guard.feed(marker[5:] + "user\nmore") + guard.flush()
        assert shown == "Done." and guard.stopped, marker

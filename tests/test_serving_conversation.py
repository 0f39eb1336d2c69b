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


def check(messages, max_chars=100, max_messages=10, max_total_chars=1000):
    return validate_messages(messages, max_chars, max_messages, max_total_chars)


def test_validate_messages_names_the_problem():
    ok = [{"role": "user", "content": "hi"}]
    assert check(ok) is None
    assert "empty" in check([{"role": "user", "content": "  "}])
    assert "limit is 5" in check([{"role": "user", "content": "toolong"}], max_chars=5)
    assert "role" in check([{"role": "bot", "content": "x"}])
    assert "last message" in check([*ok, {"role": "assistant", "content": " "}])
    assert check([*ok, {"role": "assistant", "content": "x"}]) is None  # an answer to continue


def test_validate_messages_bounds_the_whole_history():
    many = chat(11)  # 12 messages, each short
    assert "12 messages; the limit is 10" in check(many) and "clear the chat" in check(many)
    assert "limit is 10" in check(many * 10_000)  # refused on its length, nothing else is looked at
    bulky = chat(5, size=300)  # earlier turns may be long, together they may not
    assert "1501 characters long; the limit is 1000" in check(bulky)


def linear_fit(messages, count_tokens, budget, already_dropped=0, chunk=4):
    """The previous fit_history: one render per dropped chunk; the binary search must agree with it."""
    trimmed = drop_oldest(messages, already_dropped)
    while count_tokens(trimmed.messages) > budget:
        if len(trimmed.messages) - 1 <= 1:
            return None
        trimmed = drop_oldest(messages, trimmed.dropped + chunk)
    return trimmed


def test_fit_history_agrees_with_dropping_one_chunk_at_a_time():
    import random

    rng = random.Random(0)
    for _ in range(300):
        n, size = rng.randint(1, 40), rng.randint(1, 30)
        messages = chat(n if n % 2 else n + 1, size)
        budget, already, chunk = rng.randint(1, 600), rng.randint(0, n), rng.choice([1, 2, 3, 4])
        assert fit_history(messages, chars, budget, already, chunk) == linear_fit(messages, chars, budget,
                                                                                   already, chunk)


def test_fit_history_renders_a_logarithmic_number_of_times():
    messages, calls = chat(2001), []

    def counting(kept):
        calls.append(len(kept))
        return chars(kept)

    trimmed = fit_history(messages, counting, budget=200)
    assert trimmed is not None and chars(trimmed.messages) <= 200
    assert len(calls) <= 12  # 500 chunks: 2 + log2(500) renders, where dropping a chunk at a time made ~500


def test_leak_guard_stops_at_chatml_markers():
    for marker in ("<|im_end|>", "<|im_start|>", "<|endoftext|>"):
        guard = LeakGuard()
        shown = guard.feed("Done." + marker[:5]) + guard.feed(marker[5:] + "user\nmore") + guard.flush()
        assert shown == "Done." and guard.stopped, marker


def test_validate_messages_refuses_text_utf8_cannot_encode():
    assert "not valid text" in check([{"role": "user", "content": "hi \ud800"}])
    assert check([{"role": "user", "content": "héllo 日本 😀"}]) is None

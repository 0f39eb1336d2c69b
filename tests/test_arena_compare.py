"""Compare runs on the real demo GGUFs: the arena's pair A then B, 2–4 panes at once, shared seed, own histories,
provenance guard per pane, and the `?models=` link."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import pytest

from serving.arena.compare import (
    PairHistory, ProvenanceError, check_provenance, format_stats, pane_source, panes_from_link, run_panes, run_pair,
    validate_prompt, validate_system_prompt, with_fixed_seed,
)
from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine, GenerationStats
from serving.errors import InvalidInput
from serving.generation import GenerationSettings
from tests.greedy import same_or_near_tie

PAIR = ("demo-support", "demo-base")
SETTINGS = GenerationSettings(temperature=0.8, max_new_tokens=24, seed=11)
SYSTEM = "You are the Order Assistant. Be concise."


@pytest.fixture(scope="module")
def engine(registry, demo_paths):
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048, max_queue=8))
    yield engine
    engine.close()


class MisroutingEngine:
    """A real engine with the bug seen in peer tools: every request (for `only`, if given) is answered by one
    fixed model."""

    def __init__(self, engine: Engine, answer_with: str, only: str | None = None):
        self.engine, self.answer_with, self.only, self.registry = engine, answer_with, only, engine.registry

    def prepare(self, model_id, cancel=None):
        self.engine.prepare(model_id, cancel=cancel)

    def stream(self, request, cancel=None):
        if self.only not in (None, request.model_id):
            return self.engine.stream(request, cancel)
        return self.engine.stream(replace(request, model_id=self.answer_with), cancel)


def stats_for(model_id: str, **overrides) -> GenerationStats:
    data = dict(model_id=model_id, quant="Q4_K_M", source="local", revision=None, sha256=None, n_prompt_tokens=5,
                n_tokens=3, ttft_s=0.1, tokens_per_s=20.0, finish_reason="stop", dropped_turns=0)
    return GenerationStats(**{**data, **overrides})


def test_run_is_sequential_a_then_b_with_different_answers_and_the_right_ids(engine):
    updates = list(run_pair(engine, PAIR, PairHistory(), "Where is my order?", SYSTEM, SETTINGS))
    order = [u.active for u in updates]
    # A streams to completion before B starts; the last update is the finished pair.
    assert order == sorted(order[:-1]) + [None] and order[0] == 0 and 1 in order
    first_b = order.index(1)
    assert updates[first_b - 1].stats[0] is not None and updates[first_b].answers[0] == updates[-1].answers[0]
    final = updates[-1]
    assert [s.model_id for s in final.stats] == list(PAIR)
    assert all(s.source.endswith(f"{s.model_id}-Q4_K_M.gguf") and s.n_tokens >= 1 for s in final.stats)
    assert final.answers[0] != final.answers[1]


def test_same_seed_gives_the_same_answers_again(engine):
    runs = [list(run_pair(engine, PAIR, PairHistory(), "Hi there", SYSTEM, SETTINGS))[-1].answers for _ in range(2)]
    assert runs[0] == runs[1]


def test_each_side_keeps_its_own_history(engine):
    first = list(run_pair(engine, PAIR, PairHistory(), "Where is my order?", SYSTEM, SETTINGS))[-1]
    history = first.history
    for side in (0, 1):
        assert [m["role"] for m in history.turns[side]] == ["user", "assistant"]
        assert history.turns[side][1]["content"] == first.answers[side]
        sent = history.messages(side, SYSTEM, "And the refund?")
        assert sent[0] == {"role": "system", "content": SYSTEM} and sent[2]["content"] == first.answers[side]
    second = list(run_pair(engine, PAIR, history, "And the refund?", SYSTEM, SETTINGS))[-1]
    assert [len(t) for t in second.history.turns] == [4, 4]
    assert PairHistory().turns == ((), ())  # "clear" is a fresh PairHistory


def test_cancel_stops_the_running_side_and_skips_the_other(engine):
    cancel = threading.Event()
    updates = []
    for update in run_pair(engine, PAIR, PairHistory(), "Tell me about refunds", SYSTEM,
                           SETTINGS.merged(max_new_tokens=64), cancel):
        updates.append(update)
        cancel.set()  # right after A's first event (a token, or "done" if its answer was empty)
    final = updates[-1]
    assert final.active is None and all(u.active in (0, None) for u in updates)
    assert final.stats[0].finish_reason in ("cancelled", "stop") and final.stats[1] is None
    assert final.answers[1] == "" and final.history.turns[0][1]["content"] == final.answers[0]


def test_guard_refuses_a_base_pane_answered_by_the_fine_tune(engine):
    buggy = MisroutingEngine(engine, answer_with="demo-support")
    updates = []
    with pytest.raises(ProvenanceError, match="demo-base") as caught:
        for update in run_pair(buggy, ("demo-base", "demo-support"), PairHistory(), "Hello", SYSTEM, SETTINGS):
            updates.append(update)
    assert "came from another model" in caught.value.user_message
    assert all(u.stats[0] is None for u in updates)  # the wrong answer never got its stats / history
    assert all(u.active == 0 for u in updates)  # and B never ran


def test_guard_accepts_the_matching_entry_and_names_each_mismatch(registry):
    check_provenance(registry, "demo-base", stats_for("demo-base"))
    with pytest.raises(ProvenanceError, match="model id 'demo-support'"):
        check_provenance(registry, "demo-base", stats_for("demo-support"))
    with pytest.raises(ProvenanceError, match="source 'hub'"):
        check_provenance(registry, "demo-base", stats_for("demo-base", source="hub"))
    check_provenance(registry, "demo-base", stats_for("demo-base", source="/x/models/demo/demo-base-Q4_K_M.gguf"))
    with pytest.raises(ProvenanceError, match="source"):
        check_provenance(registry, "demo-base", stats_for("demo-base", source="/x/demo-support-Q4_K_M.gguf"))
    hub = registry.get("llama-3.2-1b-instruct").source.hub
    check_provenance(registry, "llama-3.2-1b-instruct",
                     stats_for("llama-3.2-1b-instruct", source="hub", sha256=hub.sha256))  # pinned: sha256 checked
    assert pane_source(registry, "llama-3.2-1b-instruct").source_file == f"{hub.repo}/{hub.filename}"


def test_guard_checks_sha256_when_the_registry_declares_one(registry):
    entry = registry.get("demo-base")
    pinned = entry.model_copy(update={"source": entry.source.model_copy(
        update={"local": entry.source.local.model_copy(update={"sha256": "a" * 64})})})
    pinned_registry = registry.model_copy(update={"models": {**registry.models, "demo-base": pinned}})
    check_provenance(pinned_registry, "demo-base", stats_for("demo-base", sha256="a" * 64))
    with pytest.raises(ProvenanceError, match="sha256"):
        check_provenance(pinned_registry, "demo-base", stats_for("demo-base", sha256="b" * 64))


def test_an_adapter_pane_names_its_lora_file_and_its_base(registry):
    """The shipped support adapter: its pane shows the LoRA file, the base it rides on and the file's pin, and an
    answer reported without that base (the bare base under the fine-tune's name) is refused."""
    pane = pane_source(registry, "smollm2-135m-support")
    adapter = registry.get("smollm2-135m-support").source.adapter
    assert (pane.source_file, pane.base_model, pane.sha256) == (
        "smollm2-135m-support-lora-f16.gguf", "smollm2-135m-instruct", adapter.local.sha256)
    line = format_stats(pane, None)
    assert "smollm2-135m-support-lora-f16.gguf over `smollm2-135m-instruct`" in line and adapter.local.sha256[:12] in line
    answered = stats_for("smollm2-135m-support", source="/srv/release/smollm2-135m-support-lora-f16.gguf",
                         sha256=adapter.local.sha256, base_model="smollm2-135m-instruct")
    check_provenance(registry, "smollm2-135m-support", answered)
    with pytest.raises(ProvenanceError, match="base None"):
        check_provenance(registry, "smollm2-135m-support", replace(answered, base_model=None))
    with pytest.raises(ProvenanceError, match="base 'smollm2-135m-instruct'"):
        check_provenance(registry, "smollm2-135m-instruct", replace(answered, model_id="smollm2-135m-instruct",
                                                                    sha256=None, source="package"))
    hub = pane_source(registry, "llama-3.2-1b-support")  # a Hub adapter: repo/file of the LoRA, over its Hub base
    assert hub.source_file.endswith("/Llama-3.2-1B-Instruct-Support-lora-f16.gguf")
    assert hub.base_model == "llama-3.2-1b-instruct"


@pytest.mark.parametrize("prompt, message",
                         [("", "empty prompt"), ("   \n", "empty prompt"), ("x" * 101, "limit here is 100")])
def test_empty_and_oversize_prompts_are_refused(prompt, message):
    with pytest.raises(InvalidInput, match=message):
        validate_prompt(prompt, max_chars=100)
    assert validate_prompt("  hi  ", max_chars=100) == "hi"


def test_shared_seed_is_drawn_once_when_empty():
    fixed = with_fixed_seed(GenerationSettings(seed=None), random.Random(0))
    assert fixed.seed is not None and with_fixed_seed(fixed, random.Random(1)) == fixed


def test_pane_line_shows_id_file_and_timings(registry):
    line = format_stats(pane_source(registry, "demo-base"), stats_for("demo-base"))
    assert "`demo-base`" in line and "demo-base-Q4_K_M.gguf" in line and "local file" in line
    assert "TTFT 0.10 s" in line and "20.0 tokens/s" in line and "3 tokens" in line


def test_an_oversize_system_prompt_is_refused_before_any_model_work():
    assert validate_system_prompt(None, max_chars=10) == "" and validate_system_prompt("Be brief.", 10) == "Be brief."
    with pytest.raises(InvalidInput, match="system prompt is 11 characters; the limit here is 10"):
        validate_system_prompt("x" * 11, max_chars=10)


PANES = ("demo-base", "demo-support", "demo-base")  # a model twice: its two panes share its slots
LONG = GenerationSettings(temperature=0.0, max_new_tokens=64, seed=0, ignore_eos=True)  # never ends early


def test_panes_stream_at_once_and_each_answer_is_its_models_answer_alone(engine):
    updates = list(run_panes(engine, PANES, PairHistory.of(3), "Where is my order?", SYSTEM, LONG))
    final = updates[-1]
    first_token = [next(i for i, u in enumerate(updates) if u.answers[p]) for p in range(3)]
    finished = [next(i for i, u in enumerate(updates) if u.stats[p]) for p in range(3)]
    # every pane had begun before any had finished: run one after the other, the last would begin after the first ended
    assert max(first_token) < min(finished) and final.done and updates[0].running == (True, True, True)
    assert [s.model_id for s in final.stats] == list(PANES) and all(s.n_tokens == 64 for s in final.stats)
    for pane, model_id in enumerate(PANES):
        messages = PairHistory.of(3).messages(pane, SYSTEM, "Where is my order?")
        alone, _ = engine.complete(ChatRequest(model_id, messages, LONG))
        problem = same_or_near_tie(engine.pool._loaded[model_id].model, messages, final.answers[pane], alone,
                                   settings=LONG)
        assert problem is None, (model_id, problem)
    assert all(rss and rss > 0 for rss in final.peak_rss_mb)
    assert [len(t) for t in final.history.turns] == [2, 2, 2]
    assert [t[1]["content"] for t in final.history.turns] == list(final.answers)


def test_cancel_stops_every_pane(engine):
    cancel = threading.Event()
    updates = []
    for update in run_panes(engine, PANES, PairHistory.of(3), "Tell me about refunds", SYSTEM,
                            LONG.merged(max_new_tokens=512), cancel):
        updates.append(update)
        if any(update.answers):
            cancel.set()
    final = updates[-1]
    assert final.done and all(s.finish_reason == "cancelled" for s in final.stats)
    assert all(s.n_tokens < 512 for s in final.stats)


def test_the_guard_checks_every_pane_and_stops_the_others(engine):
    """Only the base's requests are misrouted (to the fine-tune): its pane is refused, the run ends with it."""
    buggy = MisroutingEngine(engine, answer_with="demo-support", only="demo-base")
    updates = []
    with pytest.raises(ProvenanceError, match="demo-base"):
        for update in run_panes(buggy, ("demo-support", "demo-support", "demo-base"), PairHistory.of(3), "Hello",
                                SYSTEM, LONG):
            updates.append(update)
    assert all(u.stats[2] is None for u in updates)  # the wrong answer never got its stats / history
    assert not any(u.done for u in updates)


def test_a_pane_count_other_than_the_historys_is_refused(engine):
    with pytest.raises(ValueError, match="2 panes"):
        next(run_panes(engine, PANES, PairHistory(), "Hi", SYSTEM, LONG))


KNOWN = ("demo-base", "demo-support", "other")
DEFAULT = ("demo-support", "demo-base")


@pytest.mark.parametrize("query, panes, notice", [
    ({"models": "demo-base,other,demo-support"}, ["demo-base", "other", "demo-support"], None),
    ({"models": " demo-base , demo-base ,"}, ["demo-base", "demo-base"], None),  # duplicates allowed, blanks dropped
    ({"models": "demo-base,other,demo-support,demo-base,other"}, ["demo-base", "other", "demo-support", "demo-base"],
     "at most 4 models; showing the first 4 of 5"),
    ({"models": "demo-base"}, list(DEFAULT), "names 2 to 4 models"),
    ({"models": ""}, list(DEFAULT), "names 2 to 4 models"),
    ({"models": "demo-base,Call +1 555 0100"}, list(DEFAULT), "does not have"),
    ({"a": "demo-base", "b": "other"}, ["demo-base", "other"], None),  # the older pair links keep working
    ({"a": "demo-base"}, ["demo-base", "demo-support"], None),
    ({"b": "demo-support"}, ["demo-base", "demo-support"], None),
    ({"a": "nope", "b": "demo-base"}, list(DEFAULT), "does not have"),
    ({}, list(DEFAULT), None),
])
def test_links_name_two_to_four_known_models(query, panes, notice):
    got, said = panes_from_link(query, KNOWN, DEFAULT)
    assert got == panes and (said is None if notice is None else notice in said)
    assert said is None or not any(v and v in said for v in query.values())  # the link's text is never echoed


def test_the_pane_line_names_the_process_rss_as_such(registry):
    line = format_stats(pane_source(registry, "demo-base"), stats_for("demo-base"), 812.4)
    assert "process peak RSS while this pane ran 812 MiB" in line

"""Compare page (`/compare`): side by side, blind arena, leaderboard.

UI only: pairing, the A-then-B run with its provenance guard, votes and ratings live in
`serving.arena`; models are reached only through `serving.engine.Engine`. `?a=<id>&b=<id>`
preselects the side-by-side pair. Every visitor error becomes a short `gr.Warning`.
"""

from __future__ import annotations

import logging
import random
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import gradio as gr
from gradio.context import Context
from matplotlib.figure import Figure
from pydantic import ValidationError

from serving.arena import ratings
from serving.arena.compare import (
    RUN_ORDER_NOTE, PairHistory, PairUpdate, format_stats, pane_source, run_pair, validate_prompt, with_fixed_seed,
)
from serving.arena.pairing import BattleRound, PairingError, default_pair, new_round
from serving.arena.settings import ArenaSettings
from serving.arena.votes import VoteError, VoteStore, to_csv, to_jsonl
from serving.engine import Engine, ServingError
from serving.files import write_text_atomic
from serving.generation import GenerationSettings
from serving.personas import PersonaBook, load_personas

log = logging.getLogger(__name__)
CUSTOM = "custom"
DEFAULTS = GenerationSettings(max_new_tokens=256, seed=None)
SETTINGS_FIELDS = ("temperature", "top_p", "top_k", "max_new_tokens", "repeat_penalty", "seed")
SLIDERS = {  # GenerationSettings field -> (label, minimum, maximum, step)
    "temperature": ("Temperature", 0.0, 2.0, 0.05),
    "top_p": ("Top-p", 0.05, 1.0, 0.05),
    "top_k": ("Top-k", 0, 200, 1),
    "max_new_tokens": ("Max new tokens", 8, 1024, 8),
    "repeat_penalty": ("Repetition penalty", 1.0, 2.0, 0.05),
}
# The page is for people: its events are not API endpoints, so votes cannot be scripted through gradio_client.
UI_ONLY = {"api_visibility": "private"}
VOTES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
LEADERBOARD_HEADERS = ["Rank", "Model", "Rating (BT)", "95% CI", "Elo", "Battles", "Win rate", "W-L-T"]


def chat_view(history: PairHistory, side: int, prompt: str = "", answer: str | None = None) -> list[dict]:
    """A pane's Chatbot value: its own past turns, then the turn being generated (None: not started)."""
    shown = "…" if answer is None else answer or "(empty answer)"
    pending = [{"role": "user", "content": prompt}, {"role": "assistant", "content": shown}] if prompt else []
    return [dict(m) for m in history.turns[side]] + pending


def leaderboard_rows(table: list[ratings.Standing]) -> list[list]:
    return [[rank, s.model_id, round(s.rating), f"{s.ci_low:.0f} – {s.ci_high:.0f}", round(s.elo), s.battles,
             f"{s.win_rate:.0%}", f"{s.wins}-{s.losses}-{s.ties}"] for rank, s in enumerate(table, 1)]


def leaderboard_plot(table: list[ratings.Standing]) -> Figure:
    """Ratings with their bootstrap intervals as horizontal error bars, best on top."""
    fig = Figure(figsize=(7, 0.6 + 0.5 * max(1, len(table))), layout="constrained")
    ax = fig.add_subplot()
    rows = list(reversed(table))
    ax.barh([s.model_id for s in rows], [s.rating - ratings.BASE_RATING for s in rows], left=ratings.BASE_RATING,
            xerr=[[s.rating - s.ci_low for s in rows], [s.ci_high - s.rating for s in rows]], capsize=4,
            color="#6366f1")
    ax.axvline(ratings.BASE_RATING, color="grey", linewidth=0.8)
    ax.set_xlabel("Bradley-Terry rating (Elo scale), 95% bootstrap CI")
    if not table:
        ax.text(0.5, 0.5, "No votes yet", transform=ax.transAxes, ha="center")
    return fig


class ComparePage:
    """The page's handlers; holds the engine, the vote store, the personas and the settings."""

    def __init__(self, engine: Engine, personas: PersonaBook, settings: ArenaSettings):
        self.engine, self.personas, self.settings = engine, personas, settings
        self.store = VoteStore(settings.votes_db)
        self.rng = random.SystemRandom()
        self.export_dir = Path(tempfile.mkdtemp(prefix="iris-votes-"))
        self._stops: dict[str, threading.Event] = {}

    # ---- models ---------------------------------------------------------------------------
    def available(self) -> list[str]:
        return [s.id for s in self.engine.catalog() if s.available]

    def model_choices(self) -> list[tuple[str, str]]:
        return [(s.display_name if s.available else f"{s.display_name} (unavailable)", s.id)
                for s in self.engine.catalog()]

    def initial_pair(self, query: dict[str, str]) -> tuple[str | None, str | None, str | None]:
        """(a, b, warning): the `?a=&b=` ids when registered, else the default pair."""
        try:
            default = default_pair(self.engine.registry, self.available())
        except PairingError as err:
            return None, None, str(err)
        wanted = [query.get("a"), query.get("b")]
        unknown = [w for w in wanted if w and w not in self.engine.registry.ids()]
        if unknown:
            names = ", ".join(map(repr, unknown))
            return (*default, f"Unknown model id {names} in the link; showing the default pair.")
        a = wanted[0] or default[0]
        return a, wanted[1] or (default[1] if default[1] != a else default[0]), None

    def pane_header(self, model_id: str | None, side: str) -> str:
        if not model_id:
            return f"### {side}"
        registry = self.engine.registry
        line = format_stats(pane_source(registry, model_id), None)
        return f"### {side}: {registry.get(model_id).display_name}\n{line}"

    # ---- settings -------------------------------------------------------------------------
    def persona_choices(self) -> list[tuple[str, str]]:
        return [("Custom system prompt", CUSTOM)] + [(p.name, p.id) for p in self.personas.personas.values()]

    def persona_defaults(self, persona_id: str) -> tuple:
        """System prompt and slider values for a persona (custom keeps an empty prompt)."""
        if persona_id == CUSTOM:
            return ("", *[getattr(DEFAULTS, f) for f in SETTINGS_FIELDS])
        persona = self.personas.get(persona_id)
        values = persona.settings(DEFAULTS)
        return (persona.system_prompt, *[getattr(values, f) for f in SETTINGS_FIELDS])

    def generation(self, values: tuple) -> GenerationSettings:
        """Shared settings from the UI values, with one seed drawn for both sides when empty."""
        chosen = dict(zip(SETTINGS_FIELDS, values))
        chosen["seed"] = None if chosen["seed"] in (None, "") else int(chosen["seed"])
        try:
            return with_fixed_seed(GenerationSettings(**chosen), random.Random(self.rng.random()))
        except ValidationError as err:
            first = err.errors()[0]
            raise gr.Error(f"Invalid setting {first['loc'][0]}: {first['msg']}.") from None

    def checked_prompt(self, prompt: str) -> str:
        try:
            return validate_prompt(prompt, self.settings.max_prompt_chars)
        except ServingError as err:
            raise gr.Error(err.user_message) from None

    # ---- side by side ---------------------------------------------------------------------
    def side_by_side(self, prompt, model_a, model_b, system_prompt, history: PairHistory | None,
                     *values) -> Iterator[tuple]:
        prompt, settings, history = self.checked_prompt(prompt), self.generation(values), history or PairHistory()
        if not model_a or not model_b or model_a == model_b:
            raise gr.Error("Pick two different models, one for A and one for B.")
        heads = [self.pane_header(model_a, "A"), self.pane_header(model_b, "B")]
        update, stop = None, self._stops.setdefault(history.conversation_id, threading.Event())
        stop.clear()
        try:
            for update in run_pair(self.engine, (model_a, model_b), history, prompt, system_prompt or "", settings,
                                   stop):
                yield self._pair_view(update, (model_a, model_b), prompt, heads, settings)
        except ServingError as err:
            log.warning("side-by-side failed: %s", err)
            gr.Warning(err.user_message)
            yield gr.update(), history, chat_view(history, 0), chat_view(history, 1), *heads
            return
        finally:
            self._stops.pop(history.conversation_id, None)
        for notice in update.notices:
            gr.Info(notice)

    def _pair_view(self, update: PairUpdate, models, prompt, heads, settings) -> tuple:
        registry, done = self.engine.registry, update.active is None
        for side, stats in enumerate(update.stats):
            if stats is not None:
                heads[side] = (f"### {'AB'[side]}: {registry.get(models[side]).display_name}\n"
                               f"{format_stats(pane_source(registry, stats.model_id), stats)} · seed {settings.seed}")
        views = [chat_view(update.history, s) if done else
                 chat_view(update.history, s, prompt, update.answers[s] or None if update.active >= s else None)
                 for s in (0, 1)]
        return ("" if done else gr.update(), update.history, *views, *heads)

    def stop(self, history: PairHistory | None) -> None:
        """Stop the pair run of this conversation (the side generating now ends; the other is skipped)."""
        if history is not None and history.conversation_id in self._stops:
            self._stops[history.conversation_id].set()

    def clear(self, history: PairHistory | None = None) -> tuple:
        """A fresh pair history (new conversation ids) and empty panes; a running pair is stopped."""
        if history is not None:
            self.stop(history)
            for side in "ab":
                self.engine.forget(f"{history.conversation_id}-{side}")
        return PairHistory(), [], []

    # ---- blind arena ----------------------------------------------------------------------
    def start_round(self) -> tuple:
        """A fresh round with a new hidden pair; everything from the last round is cleared."""
        try:
            rnd = new_round(self.available(), random.Random(self.rng.random()))
        except PairingError as err:
            gr.Warning(str(err))
            rnd = None
        return (rnd, [], [], "Names are hidden until you vote.", "", *self._vote_buttons(False))

    def battle(self, prompt, system_prompt, rnd: BattleRound | None, *values) -> Iterator[tuple]:
        if rnd is None:
            raise gr.Error("No round is open: press “New round”.")
        if rnd.prompt:
            raise gr.Error("This round already has its prompt: vote, then start a new round.")
        prompt, settings = self.checked_prompt(prompt), self.generation(values)
        update = None
        try:
            for update in run_pair(self.engine, rnd.models, PairHistory(), prompt, system_prompt or "", settings):
                done = update.active is None
                views = [chat_view(PairHistory(), s, prompt, update.answers[s] if done else
                                   update.answers[s] or None if update.active >= s else None) for s in (0, 1)]
                yield (rnd, *views, gr.update(), *self._vote_buttons(False))
        except ServingError as err:
            log.warning("battle round %s failed: %s", rnd.round_id, err)
            gr.Warning(err.user_message)
            return
        answered = rnd.answered(prompt, update.answers, settings.model_dump())
        yield (answered, *views, "Which answer is better? Vote to reveal the models.", *self._vote_buttons(True))

    def vote(self, outcome: str, rnd: BattleRound | None) -> tuple:
        if rnd is None:
            raise gr.Error("No round is open: press “New round”.")
        try:
            self.store.record(rnd.vote(outcome))
        except VoteError as err:
            raise gr.Error(str(err)) from None
        names = [self.engine.registry.get(m).display_name for m in rnd.models]
        reveal = (f"**You voted: {VOTES[outcome]}.**  \nA was **{names[0]}** (`{rnd.models[0]}`), "
                  f"B was **{names[1]}** (`{rnd.models[1]}`). Press “New round” to go again.")
        return (replace(rnd, voted=True), reveal, "", *self._vote_buttons(False), *self.leaderboard())

    @staticmethod
    def _vote_buttons(enabled: bool) -> list:
        return [gr.update(interactive=enabled) for _ in VOTES]

    # ---- leaderboard ----------------------------------------------------------------------
    def leaderboard(self) -> tuple:
        """Table, plot and fresh CSV/JSONL exports of every stored vote."""
        votes = self.store.votes()
        table = ratings.leaderboard([v.battle for v in votes], n_boot=self.settings.bootstrap_rounds, seed=0)
        csv_path, jsonl_path = self.export_dir / "iris-votes.csv", self.export_dir / "iris-votes.jsonl"
        write_text_atomic(csv_path, to_csv(votes))
        write_text_atomic(jsonl_path, to_jsonl(votes))
        summary = f"{len(votes)} votes · {len(table)} models · ties and “both bad” count half in the ratings."
        return leaderboard_rows(table), leaderboard_plot(table), summary, str(csv_path), str(jsonl_path)

    # ---- page load ------------------------------------------------------------------------
    def on_load(self, request: gr.Request) -> tuple:
        a, b, warning = self.initial_pair(dict(request.query_params) if request else {})
        if warning:
            gr.Warning(warning)
        choices = self.model_choices()
        return (gr.update(choices=choices, value=a), gr.update(choices=choices, value=b),
                self.pane_header(a, "A"), self.pane_header(b, "B"), share_link(a, b), *self.start_round(),
                *self.leaderboard())


def share_link(model_a: str | None, model_b: str | None) -> str:
    if not model_a or not model_b:
        return ""
    return f"Link to this pair: [`/compare?a={model_a}&b={model_b}`](/compare?a={model_a}&b={model_b})"


def build(engine: Engine) -> None:
    """Create the page's components inside the current Blocks/route context and wire them."""
    page = ComparePage(engine, load_personas(), ArenaSettings.from_env())
    gr.Markdown("## Compare models\nIs the fine-tune better than its base? Ask both, or let visitors vote blind.")
    with gr.Accordion("Persona and shared settings (both sides use the same ones)", open=False,
                      elem_id="compare-settings"):
        persona = gr.Dropdown(page.persona_choices(), value=CUSTOM, label="Persona")
        system = gr.Textbox(label="System prompt", lines=2, placeholder="Optional system prompt sent to both models")
        with gr.Row():
            sliders = [gr.Slider(lo, hi, value=getattr(DEFAULTS, f), step=step, label=label, elem_id=f"compare-set-{f}")
                       for f, (label, lo, hi, step) in SLIDERS.items()]
            seed = gr.Number(value=None, precision=0, label="Seed (empty: one random seed for both)",
                             elem_id="compare-set-seed")
    values = [*sliders, seed]
    persona.change(page.persona_defaults, persona, [system, *values], **UI_ONLY)
    with gr.Tabs():
        with gr.Tab("Side by side", id="side"):
            pair = _build_side_by_side(page, system, values)
        with gr.Tab("Blind arena", id="arena"):
            arena = _build_arena(page, system, values)
        with gr.Tab("Leaderboard", id="leaderboard") as board_tab:
            board = _build_leaderboard(page)
    board_tab.select(page.leaderboard, None, board, **UI_ONLY)
    for outcome, button in zip(VOTES, arena["votes"]):
        button.click(lambda rnd, o=outcome: page.vote(o, rnd), arena["round"],
                     [arena["round"], arena["reveal"], arena["status"], *arena["votes"], *board], **UI_ONLY)
    Context.root_block.load(page.on_load, None, [*pair, *arena["round_outputs"], *board], **UI_ONLY)


def _build_side_by_side(page: ComparePage, system, values) -> list:
    gr.Markdown(f"*{RUN_ORDER_NOTE}*")
    with gr.Row():
        model_a = gr.Dropdown([], label="Model A", elem_id="compare-model-a")
        model_b = gr.Dropdown([], label="Model B", elem_id="compare-model-b")
    link = gr.Markdown(elem_id="compare-link")
    with gr.Row(equal_height=True):
        with gr.Column():
            head_a = gr.Markdown(elem_id="compare-head-a")
            chat_a = gr.Chatbot(label="A", height=360, elem_id="compare-chat-a")
        with gr.Column():
            head_b = gr.Markdown(elem_id="compare-head-b")
            chat_b = gr.Chatbot(label="B", height=360, elem_id="compare-chat-b")
    prompt = gr.Textbox(label="Prompt for both models", lines=2, elem_id="compare-prompt")
    with gr.Row():
        send = gr.Button("Ask both", variant="primary", elem_id="compare-send")
        stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
        clear = gr.Button("Clear both", elem_id="compare-clear")
    history = gr.State(None)  # a PairHistory per session, made on the first run (a shared default would share ids)
    run = dict(fn=page.side_by_side, inputs=[prompt, model_a, model_b, system, history, *values],
               outputs=[prompt, history, chat_a, chat_b, head_a, head_b], **UI_ONLY)
    send.click(**run)
    prompt.submit(**run)
    stop.click(page.stop, history, None, queue=False, **UI_ONLY)
    clear.click(page.clear, history, [history, chat_a, chat_b], **UI_ONLY)
    for picker, head, side in ((model_a, head_a, "A"), (model_b, head_b, "B")):
        picker.change(lambda m, s=side: page.pane_header(m, s), picker, head, **UI_ONLY).then(
            page.clear, history, [history, chat_a, chat_b], **UI_ONLY)
        picker.change(share_link, [model_a, model_b], link, **UI_ONLY)
    return [model_a, model_b, head_a, head_b, link]


def _build_arena(page: ComparePage, system, values) -> dict:
    gr.Markdown("Two models drawn at random answer the same prompt; their names are hidden until you vote. "
                f"*{RUN_ORDER_NOTE}*")
    rnd = gr.State(None)
    with gr.Row(equal_height=True):
        chat_a = gr.Chatbot(label="Model A", height=320, elem_id="arena-chat-a")
        chat_b = gr.Chatbot(label="Model B", height=320, elem_id="arena-chat-b")
    reveal = gr.Markdown(elem_id="arena-reveal")
    status = gr.Markdown(elem_id="arena-status")
    with gr.Row():
        votes = [gr.Button(label, interactive=False, elem_id=f"arena-vote-{key}") for key, label in VOTES.items()]
    prompt = gr.Textbox(label="Prompt for the hidden models", lines=2, elem_id="arena-prompt")
    with gr.Row():
        send = gr.Button("Ask", variant="primary", elem_id="arena-send")
        again = gr.Button("New round", elem_id="arena-new")
    round_outputs = [rnd, chat_a, chat_b, reveal, status, *votes]
    run = dict(fn=page.battle, inputs=[prompt, system, rnd, *values], outputs=[rnd, chat_a, chat_b, status, *votes],
               **UI_ONLY)
    send.click(**run)
    prompt.submit(**run)
    again.click(lambda: (*page.start_round(), ""), None, [*round_outputs, prompt], **UI_ONLY)
    return {"round": rnd, "reveal": reveal, "status": status, "votes": votes, "round_outputs": round_outputs}


def _build_leaderboard(page: ComparePage) -> list:
    summary = gr.Markdown(elem_id="leaderboard-summary")
    table = gr.Dataframe(headers=LEADERBOARD_HEADERS, interactive=False, elem_id="leaderboard-table")
    plot = gr.Plot(label="Ratings")
    with gr.Row():
        csv = gr.DownloadButton("Export votes (CSV)", elem_id="export-csv")
        jsonl = gr.DownloadButton("Export votes (JSONL)", elem_id="export-jsonl")
        refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")
    outputs = [table, plot, summary, csv, jsonl]
    refresh.click(page.leaderboard, None, outputs, **UI_ONLY)
    return outputs

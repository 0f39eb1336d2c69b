"""Compare page (`/compare`): 2–4 models side by side, blind arena (a pair), leaderboard.

UI only: pairing, the runs with their provenance guard, link parsing, votes and ratings live in
`serving.arena`; models are reached only through `serving.engine.Engine`. `?models=a,b,c` (or the
older `?a=<id>&b=<id>`) preselects the side-by-side panes. Every visitor error becomes a short `gr.Warning`.
"""

from __future__ import annotations

import hmac
import logging
import random
from collections.abc import Iterator
from dataclasses import replace

import gradio as gr
from gradio.context import Context
from matplotlib.figure import Figure

from pages.chat import model_label, slider
from pages.errors import shown_errors
from serving.arena import ratings
from serving.arena.compare import (
    MAX_PANES, MIN_PANES, PANE_LETTERS, PANES_NOTE, RUN_ORDER_NOTE, PairHistory, PanesUpdate, format_stats,
    pane_source, panes_from_link, run_panes, run_pair, validate_prompt, validate_system_prompt, with_fixed_seed,
)
from serving.arena.integrity import VoteLimiter, reveals_identity
from serving.arena.pairing import BattleRound, PairingError, battle_settings, default_pair, new_round
from serving.arena.settings import ArenaSettings
from serving.arena.votes import VoteError, VoteStore, public_csv, public_jsonl, to_csv, to_jsonl
from serving.downloads import write_download
from serving.engine import Engine, ServingError
from serving.generation import VISITOR_KNOBS, GenerationSettings, visitor_seed, visitor_settings
from serving.personas import PersonaBook, load_personas
from serving.stops import StopFlags

log = logging.getLogger(__name__)
CUSTOM = "custom"
DEFAULTS = GenerationSettings(max_new_tokens=256, seed=None)
SETTINGS_FIELDS = ("temperature", "top_p", "top_k", "max_new_tokens", "repeat_penalty", "seed")
SLIDERS = VISITOR_KNOBS
# The page is for people: its events are not API endpoints, so votes cannot be scripted through gradio_client.
UI_ONLY = {"api_visibility": "private"}
VOTES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
STORED_NOTE = ("**What a vote stores:** your prompt, both answers, the two model ids, the sampling settings, your "
               "verdict and the time; no name, account or cookie. Your IP address is only held in memory for an hour "
               "to limit votes. The public export lists only counted votes' model pairs, verdicts and dates; prompts "
               "and answers are exported only for this server's owner.")
KEEP = object()
"""`padded`'s default: a hidden pane's output is left unchanged."""
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
        self.limiter = VoteLimiter({"session": settings.votes_per_session, "IP address": settings.votes_per_ip},
                                   settings.vote_window_s)
        self.stops = StopFlags()

    # ---- models ---------------------------------------------------------------------------
    def available(self) -> list[str]:
        return [s.id for s in self.engine.catalog() if s.available]

    def model_choices(self) -> list[tuple[str, str]]:
        return [(model_label(s), s.id) for s in self.engine.catalog()]

    def initial_panes(self, query: dict[str, str]) -> tuple[list[str], str | None]:
        """(model ids, warning): the link's `?models=` (or `?a=&b=`) when valid, else the default pair."""
        try:
            default = default_pair(self.engine.registry, self.available())
        except PairingError as err:
            return [], str(err)
        return panes_from_link(query, self.engine.registry.ids(), default)

    def pane_header(self, model_id: str | None, side: str) -> str:
        if not model_id:
            return f"### {side}"
        registry = self.engine.registry
        line = format_stats(pane_source(registry, model_id), None)
        return f"### {side}: {registry.get(model_id).display_name}\n{line}"

    def pane_count(self, count, *models) -> tuple:
        """Show the first `count` panes and hide the rest; the share link follows."""
        n = panes_shown(count)
        return (*[gr.update(visible=pane < n) for pane in range(MAX_PANES)], share_link(models[:n]))

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
        """Shared settings from the UI values, with one seed drawn for all panes when empty."""
        *chosen, seed = values
        with shown_errors("compare"):
            settings = visitor_settings(DEFAULTS, **dict(zip(SETTINGS_FIELDS, chosen)))
            return with_fixed_seed(settings.merged(seed=visitor_seed(seed)), random.Random(self.rng.random()))

    def checked(self, prompt: str, system_prompt: str | None) -> tuple[str, str]:
        """The prompt and the system prompt, checked before any model work."""
        with shown_errors("compare"):
            return (validate_prompt(prompt, self.settings.max_prompt_chars),
                    validate_system_prompt(system_prompt, self.settings.max_system_chars))

    # ---- side by side ---------------------------------------------------------------------
    def side_by_side(self, prompt, count, *rest) -> Iterator[tuple]:
        """Every shown pane answers `prompt` at once; inputs: prompt, pane count, the four pickers, system prompt,
        history, settings values. Outputs: prompt, history, the four chats, the four headers."""
        models, (system_prompt, history, *values) = rest[:MAX_PANES], rest[MAX_PANES:]
        (prompt, system_prompt), settings = self.checked(prompt, system_prompt), self.generation(values)
        models = list(models[:panes_shown(count)])
        if not all(models):
            raise gr.Error("Pick a model for every pane.")
        if history is None or len(history.turns) != len(models):
            history = PairHistory.of(len(models)) if history is None or any(history.turns) else replace(
                history, turns=((),) * len(models))  # a cleared history keeps its id, so Stop reaches the new run
        heads = [self.pane_header(m, PANE_LETTERS[pane]) for pane, m in enumerate(models)]
        update = None
        try:
            with self.stops.run(history.conversation_id) as stop:
                for update in run_panes(self.engine, models, history, prompt, system_prompt, settings, stop):
                    yield self._panes_view(update, models, prompt, heads, settings)
        except ServingError as err:
            log.warning("side-by-side failed: %s", err)
            gr.Warning(err.user_message)
            yield (gr.update(), history, *padded([chat_view(history, p) for p in range(len(models))]),
                   *padded(heads))
            return
        for notice in update.notices:
            gr.Info(notice)

    def _panes_view(self, update: PanesUpdate, models, prompt, heads, settings) -> tuple:
        registry = self.engine.registry
        for pane, stats in enumerate(update.stats):
            if stats is not None:
                line = format_stats(pane_source(registry, stats.model_id), stats, update.peak_rss_mb[pane])
                heads[pane] = (f"### {PANE_LETTERS[pane]}: {registry.get(models[pane]).display_name}\n"
                               f"{line} · seed {settings.seed}")
        views = [chat_view(update.history, p) if update.done else
                 chat_view(update.history, p, prompt, update.answers[p] or None if update.running[p] else
                           update.answers[p]) for p in range(len(models))]
        return ("" if update.done else gr.update(), update.history, *padded(views), *padded(heads))

    def stop(self, history: PairHistory | None) -> None:
        """Stop this visitor's side-by-side run: every pane of it ends (another visitor's run has its own id)."""
        if history is not None:
            self.stops.stop(history.conversation_id)

    def clear(self, history: PairHistory | None = None) -> tuple:
        """A fresh history (new conversation ids) and empty panes; a running side-by-side run is stopped."""
        if history is not None:
            self.stop(history)
            for pane in range(len(history.turns)):
                self.engine.forget(history.pane_id(pane))
        return PairHistory(), *[[] for _ in range(MAX_PANES)]

    # ---- blind arena ----------------------------------------------------------------------
    def start_round(self) -> tuple:
        """A fresh round with a new hidden pair; everything from the last round is cleared."""
        try:
            rnd = new_round(self.available(), random.Random(self.rng.random()))
        except PairingError as err:
            gr.Warning(str(err))
            rnd = None
        return (rnd, [], [], "Names are hidden until you vote.", "", *self._vote_buttons(False))

    def battle(self, prompt, rnd: BattleRound | None) -> Iterator[tuple]:
        """Both hidden models answer `prompt` with the server's settings and seed (`BATTLE_SETTINGS`)."""
        if rnd is None:
            raise gr.Error("No round is open: press “New round”.")
        if rnd.prompt:
            raise gr.Error("This round already has its prompt: vote, then start a new round.")
        prompt, _ = self.checked(prompt, "")
        settings, update = battle_settings(random.Random(self.rng.random())), None
        try:
            for update in run_pair(self.engine, rnd.models, PairHistory(), prompt, "", settings):
                done = update.active is None
                views = [chat_view(PairHistory(), s, prompt, update.answers[s] if done else
                                   update.answers[s] or None if update.active >= s else None) for s in (0, 1)]
                yield (rnd, *views, gr.update(), *self._vote_buttons(False))
        except ServingError as err:
            log.warning("battle round %s failed: %s", rnd.round_id, err)
            gr.Warning(err.user_message)
            return
        anonymous = not reveals_identity(update.answers, self.identity_names())
        answered = rnd.answered(prompt, update.answers, settings.model_dump(), anonymous)
        yield (answered, *views, "Which answer is better? Vote to reveal the models.", *self._vote_buttons(True))

    def voter(self, outcome: str):
        """The click handler of one vote button (Gradio passes the request to an annotated parameter)."""
        def vote(rnd: BattleRound | None, request: gr.Request) -> tuple:
            return self.vote(outcome, rnd, request)

        return vote

    def identity_names(self) -> list[str]:
        """Every registered model's id and display name: an answer naming one reveals who answered."""
        return [name for e in self.engine.registry.models.values() for name in (e.id, e.display_name)]

    def vote(self, outcome: str, rnd: BattleRound | None, request: gr.Request | None = None) -> tuple:
        if rnd is None:
            raise gr.Error("No round is open: press “New round”.")
        try:
            vote = rnd.vote(outcome)
            self.limiter.allow(visitor_keys(request, self.settings.trust_forwarded_for))
            self.store.record(vote)
        except VoteError as err:
            raise gr.Error(str(err)) from None
        names = [self.engine.registry.get(m).display_name for m in rnd.models]
        reveal = (f"**You voted: {VOTES[outcome]}.**  \nA was **{names[0]}** (`{rnd.models[0]}`), "
                  f"B was **{names[1]}** (`{rnd.models[1]}`). Press “New round” to go again.")
        if not vote.anonymous:
            reveal += "  \n_An answer named a model or its maker, so this vote is kept but not counted._"
        return (replace(rnd, voted=True), reveal, "", *self._vote_buttons(False), *self.leaderboard())

    @staticmethod
    def _vote_buttons(enabled: bool) -> list:
        return [gr.update(interactive=enabled) for _ in VOTES]

    # ---- leaderboard ----------------------------------------------------------------------
    def leaderboard(self) -> tuple:
        """Table, plot and summary of every stored vote (no files: exports are written only when asked for)."""
        battles, stored = self.store.battles(), self.store.count()
        table = ratings.leaderboard(battles, n_boot=self.settings.bootstrap_rounds, seed=0)
        summary = (f"{len(battles)} votes · {len(table)} models · ties and “both bad” count half in the ratings."
                   + (f" {stored - len(battles)} vote(s) not counted: an answer named a model." if stored > len(battles)
                      else ""))
        return leaderboard_rows(table), leaderboard_plot(table), summary

    def export(self, token: str | None = "") -> tuple:
        """Vote files written now: the public battles, or with the owner's token every field of every vote."""
        votes = self.store.votes()
        if self.is_owner(token):
            files = ((to_csv(votes), "iris-votes-full.csv"), (to_jsonl(votes), "iris-votes-full.jsonl"))
        else:
            files = ((public_csv(votes), "iris-battles.csv"), (public_jsonl(votes), "iris-battles.jsonl"))
        return tuple(gr.DownloadButton(value=str(write_download(text, name, "votes")), visible=True)
                     for text, name in files)

    def is_owner(self, token: str | None) -> bool:
        """True for the owner's token, False for none; a wrong token is refused with a short error."""
        if not token:
            return False
        expected = self.settings.export_token
        if expected is None:
            raise gr.Error("The full export is off on this server; leave the token empty for the public export.")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
            raise gr.Error("The owner token is wrong; leave it empty for the public export.")
        return True

    # ---- page load ------------------------------------------------------------------------
    def on_load(self, request: gr.Request) -> tuple:
        models, warning = self.initial_panes(dict(request.query_params) if request else {})
        if warning:
            gr.Warning(warning)
        choices, n = self.model_choices(), max(MIN_PANES, len(models))
        models = padded(models, None)
        return (n, *[gr.update(choices=choices, value=m) for m in models],
                *[self.pane_header(m, letter) for m, letter in zip(models, PANE_LETTERS)],
                *[gr.update(visible=pane < n) for pane in range(MAX_PANES)], share_link(models[:n]),
                *self.start_round(), *self.leaderboard())


def visitor_keys(request: gr.Request | None, trust_forwarded_for: bool = False) -> dict[str, str]:
    """The keys a visitor's votes are limited by: the browser session and the client's IP address.

    Behind a trusted proxy the socket's address is the proxy's, so the first X-Forwarded-For entry is used.
    """
    if request is None:
        return {}
    forwarded = (request.headers.get("x-forwarded-for") or "") if trust_forwarded_for else ""
    address = forwarded.split(",")[0].strip() or getattr(getattr(request, "client", None), "host", "") or ""
    return {"session": request.session_hash or "", "IP address": address}


def panes_shown(count) -> int:
    """The pane count the UI asked for, kept within 2–4."""
    try:
        return min(MAX_PANES, max(MIN_PANES, int(count)))
    except (TypeError, ValueError):
        return MIN_PANES


def padded(values: list, fill: object = KEEP) -> list:
    """`values` for the shown panes, then `fill` (default: leave the component as it is) for the hidden ones."""
    return [*values, *[gr.update() if fill is KEEP else fill for _ in range(MAX_PANES - len(values))]]


def share_link(models) -> str:
    if len(models) < MIN_PANES or not all(models):
        return ""
    path = f"/compare?models={','.join(models)}"
    return f"Link to these panes: [`{path}`]({path})"


def build(engine: Engine) -> None:
    """Create the page's components inside the current Blocks/route context and wire them."""
    page = ComparePage(engine, load_personas(), ArenaSettings.from_env())
    gr.Markdown("## Compare models\nIs the fine-tune better than its base? Ask two to four models at once, "
                "or let visitors vote blind on a pair.")
    with gr.Accordion("Persona and shared settings (every pane uses the same ones)", open=False,
                      elem_id="compare-settings"):
        persona = gr.Dropdown(page.persona_choices(), value=CUSTOM, label="Persona")
        system = gr.Textbox(label="System prompt", lines=2, placeholder="Optional system prompt sent to every model",
                            max_length=page.settings.max_system_chars)
        with gr.Row():
            sliders = [slider(f, getattr(DEFAULTS, f), f"compare-set-{f}") for f in SLIDERS]
            seed = gr.Number(value=None, precision=0, label="Seed (empty: one random seed for all)",
                             elem_id="compare-set-seed")
    values = [*sliders, seed]
    persona.change(page.persona_defaults, persona, [system, *values], **UI_ONLY)
    with gr.Tabs():
        with gr.Tab("Side by side", id="side"):
            pair = _build_side_by_side(page, system, values)
        with gr.Tab("Blind arena", id="arena"):
            arena = _build_arena(page)
        with gr.Tab("Leaderboard", id="leaderboard") as board_tab:
            board = _build_leaderboard(page)
    board_tab.select(page.leaderboard, None, board, **UI_ONLY)
    for outcome, button in zip(VOTES, arena["votes"]):
        button.click(page.voter(outcome), arena["round"],
                     [arena["round"], arena["reveal"], arena["status"], *arena["votes"], *board], **UI_ONLY)
    Context.root_block.load(page.on_load, None, [*pair, *arena["round_outputs"], *board], **UI_ONLY)


def _build_side_by_side(page: ComparePage, system, values) -> list:
    gr.Markdown(f"*{PANES_NOTE}*")
    count = gr.Radio(list(range(MIN_PANES, MAX_PANES + 1)), value=MIN_PANES, label="Panes", elem_id="compare-panes")
    link = gr.Markdown(elem_id="compare-link")
    columns, pickers, heads, chats = [], [], [], []
    with gr.Row(equal_height=True):
        for pane, letter in enumerate(PANE_LETTERS):
            with gr.Column(visible=pane < MIN_PANES, min_width=240) as column:
                key = letter.lower()
                pickers.append(gr.Dropdown([], label=f"Model {letter}", elem_id=f"compare-model-{key}"))
                heads.append(gr.Markdown(elem_id=f"compare-head-{key}"))
                chats.append(gr.Chatbot(label=letter, height=360, elem_id=f"compare-chat-{key}"))
            columns.append(column)
    prompt = gr.Textbox(label="Prompt for every pane", lines=2, elem_id="compare-prompt")
    with gr.Row():
        send = gr.Button("Ask all", variant="primary", elem_id="compare-send")
        stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
        clear = gr.Button("Clear all", elem_id="compare-clear")
    history = gr.State(None)  # a PairHistory per session, made on the first run (a shared default would share ids)
    run = dict(fn=page.side_by_side, inputs=[prompt, count, *pickers, system, history, *values],
               outputs=[prompt, history, *chats, *heads], **UI_ONLY)
    send.click(**run)
    prompt.submit(**run)
    stop.click(page.stop, history, None, queue=False, **UI_ONLY)
    clear.click(page.clear, history, [history, *chats], **UI_ONLY)
    count.change(page.pane_count, [count, *pickers], [*columns, link], **UI_ONLY).then(
        page.clear, history, [history, *chats], **UI_ONLY)
    for picker, head, letter in zip(pickers, heads, PANE_LETTERS):
        picker.change(lambda m, s=letter: page.pane_header(m, s), picker, head, **UI_ONLY).then(
            page.clear, history, [history, *chats], **UI_ONLY)
        picker.change(lambda n, *ms: share_link(ms[:panes_shown(n)]), [count, *pickers], link, **UI_ONLY)
    return [count, *pickers, *heads, *columns, link]


def _build_arena(page: ComparePage) -> dict:
    gr.Markdown("Two models drawn at random answer the same prompt; their names are hidden until you vote. "
                "Every round uses the server's settings and a fresh seed, with no system prompt (the shared "
                "settings above are for side by side). A vote where an answer names a model is kept but not "
                f"counted. *{RUN_ORDER_NOTE}*")
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
    run = dict(fn=page.battle, inputs=[prompt, rnd], outputs=[rnd, chat_a, chat_b, status, *votes], **UI_ONLY)
    send.click(**run)
    prompt.submit(**run)
    again.click(lambda: (*page.start_round(), ""), None, [*round_outputs, prompt], **UI_ONLY)
    return {"round": rnd, "reveal": reveal, "status": status, "votes": votes, "round_outputs": round_outputs}


def _build_leaderboard(page: ComparePage) -> list:
    summary = gr.Markdown(elem_id="leaderboard-summary")
    table = gr.Dataframe(headers=LEADERBOARD_HEADERS, interactive=False, elem_id="leaderboard-table")
    plot = gr.Plot(label="Ratings")
    gr.Markdown(STORED_NOTE, elem_id="votes-stored-note")
    with gr.Row():
        refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")
        token = gr.Textbox(placeholder="Owner token (full export)", type="password", show_label=False,
                           max_length=200, elem_id="export-token")
        prepare = gr.Button("Export votes", elem_id="export-prepare")
        csv = gr.DownloadButton("Download CSV", visible=False, elem_id="export-csv")
        jsonl = gr.DownloadButton("Download JSONL", visible=False, elem_id="export-jsonl")
    outputs = [table, plot, summary]
    refresh.click(page.leaderboard, None, outputs, **UI_ONLY)
    prepare.click(page.export, token, [csv, jsonl], **UI_ONLY)
    return outputs

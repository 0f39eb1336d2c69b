"""The chat component shared by the support chat (`/`) and the study tutor: layout, handlers, kept conversations.

UI only. Answers come from `serving.engine.Engine` (one validation path: `Engine.check`); conversations are
`serving.transcript` objects kept in the visitor's browser (`gr.BrowserState`; the server stores none), listed
in a sidebar (new, rename, delete, switch), exported as Markdown/JSON and imported back. A user message can be
edited (the old continuation stays as a branch), a cut-off answer continued, and a meter shows the context used.
Under the chat, a collapsed "Sources" block lists the help-center passages and order records the latest answer
was given (kept with each answer in the conversation and its exports; never sent back to the model as history).
A page makes one `Chat` with its personas and calls `build_chat` with its own persona and model pickers (a
Dropdown, or a fixed `gr.State`) and settings (sliders or fixed states). `SLIDERS`, `slider`, `model_label`
and `footer` are also what the compare page uses.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import gradio as gr
from gradio.context import Context

from pages.errors import shown_errors
from serving.config import ServingSettings
from serving.context.articles import Passage
from serving.downloads import write_download
from serving.engine import AnswerCheck, ChatRequest, Engine, GenerationStats, ModelStatus, Source
from serving.files import write_text_atomic
from serving.generation import VISITOR_KNOBS, GenerationSettings, visitor_settings
from serving.personas import Persona
from serving.stops import StopFlags
from serving.study.export import safe_filename
from serving.transcript import (
    MAX_FILE_BYTES, MAX_SOURCES, UNBACKED, AnswerStats, Conversation, Library, Message, ModelRef, edit,
    load_transcript, switch_branch, to_json, to_markdown,
)

log = logging.getLogger(__name__)
SLIDERS = {key: VISITOR_KNOBS[key] for key in ("temperature", "top_p", "max_new_tokens", "repeat_penalty")}
CONTEXT_WARN = 0.8  # share of the room for history (context minus the answer's reserve) that raises the warning
PRIVATE = {"api_visibility": "private"}
CUT_OFF = "The answer stopped at the token limit. Press **Continue** to let it go on."


def slider(key: str, value: float, elem_id: str) -> gr.Slider:
    """A settings slider over the visitor range of `key` (the range the engine also accepts from the API)."""
    knob = VISITOR_KNOBS[key]
    return gr.Slider(knob.minimum, knob.maximum, value=value, step=knob.step, label=knob.label, elem_id=elem_id)


def model_label(status: ModelStatus) -> str:
    return status.display_name if status.available else f"{status.display_name} (unavailable)"


def footer(stats: GenerationStats | AnswerStats | None, trained: str = "") -> str:
    """The line under an answer: the model, its quant, how it was trained (when Iris trained it) and the speed."""
    if stats is None:
        return ""
    how = f" · {trained}" if trained else ""
    return (f"Model `{stats.model_id}` · {stats.quant}{how} · {stats.tokens_per_s:.1f} tokens/s · "
            f"{stats.n_tokens} tokens · first token after {stats.ttft_s:.2f}s")


def sources_html(sources: Sequence[Source], check: AnswerCheck | None = None) -> str:
    """What an answer was given, as one collapsed HTML block: "Sources: 2 passages, 1 order record", opening to
    each title, which opens to its excerpt and reference; before it, in view, the answer's figures its sources do
    not back (`check`). One line (Markdown ends an HTML block at a blank line), every text escaped."""
    if not sources:
        return ""
    articles = sum(s.kind == "article" for s in sources)
    counts = [f"{n} {name}{'s' if n > 1 else ''}" for n, name in ((articles, "passage"),
                                                                  (len(sources) - articles, "order record")) if n]
    items = "".join(f'<li><details class="iris-source"><summary>{escape(s.title)}</summary><p>{_lines(s.excerpt)}</p>'
                    f'<p><code>{escape(s.ref)}</code></p></details></li>' for s in sources)
    summary = f"Sources: {', '.join(counts)}"
    return f'{check_html(check)}<details class="iris-sources"><summary>{summary}</summary><ul>{items}</ul></details>'


def check_html(check: AnswerCheck | None) -> str:
    """The answer check's line: a warning naming the figures no source backs, or how many figures were found in
    them ("" for an answer without figures or without sources)."""
    if check is None or not check.figures:
        return ""
    if check.unbacked:
        figures = ", ".join(f"<b>{escape(figure)}</b>" for figure in check.unbacked)
        return (f'<p class="iris-check iris-unbacked">⚠ {UNBACKED}: {figures}. Check the sources below before '
                "relying on it, or ask for a human agent.</p>")
    many = "s" if check.figures > 1 else ""
    return f'<p class="iris-check">The {check.figures} figure{many} in this answer appear in its sources.</p>'


def _lines(text: str) -> str:
    return "<br>".join(escape(line) for line in text.splitlines() if line.strip())


def last_sources(conversation: Conversation | None) -> str:
    """The sources block of the conversation's latest answer ("" when it ends with a question or has none)."""
    last = conversation.messages[-1] if conversation and conversation.messages else None
    return sources_html(last.sources, last.check) if last and last.role == "assistant" else ""


def context_line(used: int, limit: int, dropped: int, reserve: int) -> str:
    """The meter: tokens used of the context, and a warning before (or once) the oldest turns are left out."""
    if limit <= 0:
        return ""
    line = f"Context: {used} / {limit} tokens ({used / limit:.0%})"
    if dropped:
        return line + f" · ⚠️ the oldest {dropped} messages no longer fit and are left out"
    if used >= CONTEXT_WARN * (limit - reserve):
        return line + " · ⚠️ nearly full: the next answers will leave out the oldest turns (start a new conversation)"
    return line


def browser_secret(settings: ServingSettings) -> str:
    """The key of kept conversations: the setting, else one made once and kept on this machine's disk."""
    if settings.browser_secret:
        return settings.browser_secret.get_secret_value()
    path = settings.browser_secret_file()
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        write_text_atomic(path, secrets.token_hex(32))
        return path.read_text(encoding="utf-8").strip()


def edited_text(value: object) -> str:
    """The text of an edited Chatbot message (a string, or a list of text parts)."""
    if isinstance(value, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in value)
    return value if isinstance(value, str) else ""


class Chat:
    """The chat's handlers: the engine, the page's personas and the stop flags of running answers."""

    def __init__(self, engine: Engine, personas: list[Persona], page: str,
                 notes_for: Callable[[str, object, list[dict]], Sequence[Passage]] | None = None):
        self.engine, self.personas, self.page = engine, personas, page
        self.stops = StopFlags()
        self.notes_for = notes_for
        """(model id, the page's notes value, messages) -> passages of the visitor's notes for the latest question
        (`ChatRequest.notes`); used when `build_chat` is given the page's notes component."""

    def _passages(self, model_id: str, notes: object, messages: list[dict]) -> tuple[Passage, ...]:
        return tuple(self.notes_for(model_id, notes, messages)) if self.notes_for and notes else ()

    def _notes(self, values: tuple) -> object:
        """The page's notes value: what `build_chat(notes=...)` adds after the settings (None without one)."""
        return values[len(SLIDERS)] if len(values) > len(SLIDERS) else None

    # ---- validation (the engine's; the page only turns refusals into gr.Error) ------------
    def persona(self, persona_id: str) -> Persona:
        found = next((p for p in self.personas if isinstance(persona_id, str) and p.id == persona_id), None)
        if found is None:
            raise gr.Error(f"Unknown persona {persona_id!r}; choose one of: {', '.join(p.id for p in self.personas)}.")
        return found

    def model_status(self, model_id: str) -> ModelStatus:
        with shown_errors(self.page):
            return self.engine.status(model_id)

    def defaults(self, persona_id: str, model_id: str) -> GenerationSettings:
        """The persona's settings on top of the model's registry defaults."""
        persona, status = self.persona(persona_id), self.model_status(model_id)  # an unknown model is refused here
        return persona.settings(self.engine.registry.get(status.id).generation)

    def settings(self, persona_id: str, model_id: str, **chosen: float | None) -> GenerationSettings:
        """Persona/model defaults with the chosen values; out-of-range values name the field and the range."""
        with shown_errors(self.page):
            return visitor_settings(self.defaults(persona_id, model_id), **chosen)

    def request(self, messages: list[dict], persona_id: str, model_id: str, settings: GenerationSettings,
                conversation_id: str, notes: object = None) -> ChatRequest:
        """The checked request for `messages` (no system message: the engine writes the persona's) as `persona_id`
        on `model_id`, with the passages of the visitor's `notes` for the latest question when the page has notes."""
        persona, status = self.persona(persona_id), self.model_status(model_id)
        if not status.available:
            raise gr.Error(f"{status.display_name} is unavailable: {status.reason}.")
        with shown_errors(self.page):
            return self.engine.check(ChatRequest(model_id, messages, settings, conversation_id, persona_id=persona.id,
                                                 notes=self._passages(model_id, notes, messages)))

    # ---- generation ----------------------------------------------------------------------
    def stream(self, request: ChatRequest, progress: gr.Progress | None = None) -> Iterator[list[tuple[str, object]]]:
        """Batches of (kind, text) and ("done", stats); engine errors become gr.Error.

        Generation runs in the engine's worker thread, so re-rendering the chat never slows the model.
        """
        report = (lambda fraction, text: progress(fraction, desc=text)) if progress else None
        with shown_errors(self.page), self.stops.run(request.conversation_id) as stop:
            for batch in self.engine.stream_batches(request, stop, report):
                yield [(e.kind, e.stats if e.kind == "done" else e.text) for e in batch]

    def stop(self, store: dict) -> None:
        """Stop every answer of the open conversation that is being generated."""
        active = Library.from_stored(store).active
        if active:
            stopped = self.stops.stop(active)
            log.info("%s: stopped %d running answer(s) of conversation %s", self.page, stopped, active[:8])

    def _answer(self, library: Library, conversation: Conversation, settings: GenerationSettings,
                progress: gr.Progress | None, typed: str = "", notes: object = None) -> Iterator[list]:
        """Stream the answer to `conversation` (ending with a question, or a cut-off answer to continue) into
        the chat's outputs; save it in the library when done. On an error the typed text comes back."""
        before = library.current()
        try:
            request = self.request(conversation.chat(), conversation.persona, conversation.model.id, settings,
                                   conversation.id, notes)
        except gr.Error:
            yield self.view(library, before, message=typed)
            raise
        continuing = conversation.messages[-1].role == "assistant"
        shown = conversation.shown() + ([] if continuing else [{"role": "assistant", "content": ""}])
        notice, status = "", ""
        # The question is kept (and its conversation opened) at once, so Stop finds a new conversation's first answer.
        yield [shown, library.put(conversation).stored(), "", gr.skip(), notice, status, gr.update(visible=False),
               gr.skip(), gr.skip(), ""]
        try:
            for batch in self.stream(request, progress):
                for kind, value in batch:
                    if kind == "token":
                        shown[-1]["content"] += value
                        status = ""
                    elif kind == "queued":  # waiting for a busy model: its position and estimated wait
                        status = value
                    elif kind == "notice":
                        notice = value
                        gr.Info(value)
                    elif kind == "done":
                        yield self._finish(library, conversation, shown[-1]["content"], value, settings, notice)
                        return
                    else:
                        log.debug("%s: ignored a %r event", self.page, kind)
                yield [list(shown), gr.skip(), "", gr.skip(), notice, status, gr.skip(), gr.skip(), gr.skip(),
                       gr.skip()]
        except gr.Error:
            yield self.view(library, before, message=typed, notice=notice)
            raise

    def _finish(self, library: Library, conversation: Conversation, text: str, stats: GenerationStats,
                settings: GenerationSettings, notice: str) -> list:
        answer = Message(role="assistant", content=text, stats=AnswerStats.of(stats),
                         sources=list(stats.sources[:MAX_SOURCES]), check=stats.check)
        kept = conversation.messages[:-1] if conversation.messages[-1].role == "assistant" else conversation.messages
        done = conversation.model_copy(update={
            "messages": [*kept, answer], "model": ModelRef(id=stats.model_id, sha256=stats.sha256),
            "settings": {k: getattr(settings, k) for k in SLIDERS}}).titled()
        return self.view(library.put(done), done, notice=CUT_OFF if done.cut_off() else notice)

    # ---- the visitor's actions -----------------------------------------------------------
    def _open(self, library: Library, persona_id: str, model_id: str) -> Conversation:
        """The open conversation when it is with this persona and model, else a new one."""
        current = library.current()
        if current and current.persona == persona_id and current.model.id == model_id:
            return current
        return Conversation(persona=persona_id, model=ModelRef(id=model_id))

    def _chosen(self, persona_id: str, model_id: str, values: tuple) -> GenerationSettings:
        return self.settings(persona_id, model_id, **dict(zip(SLIDERS, values)))

    def respond(self, message: str, store: dict, persona_id: str, model_id: str, *values: float,
                progress: gr.Progress = gr.Progress()):
        """Send `message` in the open conversation (a new one when none is open) and stream the answer."""
        library = Library.from_stored(store)
        settings = self._chosen(persona_id, model_id, values)
        conversation = self._open(library, persona_id, model_id)
        asked = conversation.model_copy(update={"messages": [*conversation.messages,
                                                             Message(role="user", content=message)]})
        yield from self._answer(library, asked, settings, progress, typed=message, notes=self._notes(values))

    def retry(self, store: dict, persona_id: str, model_id: str, *values: float,
              progress: gr.Progress = gr.Progress()):
        """Answer the last question again; the old answer is kept as a branch."""
        library = Library.from_stored(store)
        conversation = library.current()
        last = max((i for i, m in enumerate(conversation.messages) if m.role == "user"), default=None) \
            if conversation else None
        if last is None:
            raise gr.Error("Nothing to retry yet: send a message first.")
        yield from self._edited(library, conversation, last, conversation.messages[last].content, values, progress)

    def edit(self, evt: gr.EditData, store: dict, persona_id: str, model_id: str, *values: float,
             progress: gr.Progress = gr.Progress()):
        """A message was edited in the chat: answer from there; the old continuation stays as a branch."""
        library = Library.from_stored(store)
        conversation = library.current()
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if conversation is None or not edited_text(evt.value).strip():
            yield self.view(library, conversation)
            raise gr.Error("An edited message cannot be empty; type a question.")
        yield from self._edited(library, conversation, index, edited_text(evt.value), values, progress)

    def _edited(self, library: Library, conversation: Conversation, index: int, text: str, values: tuple,
                progress: gr.Progress | None) -> Iterator[list]:
        with shown_errors(self.page):
            changed = edit(conversation, index, text)
        if len(conversation.messages) == index + 1:  # nothing was answered yet: no branch worth keeping
            changed = changed.model_copy(update={"branches": conversation.branches})
        self.engine.history_changed(conversation.id)  # the engine's cut starts again; the KV prefix is reused
        settings = self._chosen(changed.persona, changed.model.id, values)
        yield from self._answer(library.put(changed), changed, settings, progress, notes=self._notes(values))

    def continue_answer(self, store: dict, persona_id: str, model_id: str, *values: float,
                        progress: gr.Progress = gr.Progress()):
        """Let an answer cut off by the token limit go on."""
        library = Library.from_stored(store)
        conversation = library.current()
        if conversation is None or not conversation.cut_off():
            raise gr.Error("There is no cut-off answer to continue.")
        yield from self._answer(library, conversation, self._chosen(persona_id, model_id, values), progress,
                                notes=self._notes(values))

    def switch_branch(self, number: int | None, store: dict) -> list:
        library = Library.from_stored(store)
        conversation = library.current()
        if conversation is None or number is None:
            return self.view(library, conversation)
        with shown_errors(self.page):
            switched = switch_branch(conversation, int(number))
        self.engine.history_changed(conversation.id)
        return self.view(library.put(switched), switched, notice="Switched to another version of the conversation.")

    def new(self, store: dict) -> list:
        """Close the open conversation (it stays in the list); the next message starts a new one."""
        library = Library.from_stored(store)
        self.stop(store)
        if library.active:
            self.engine.forget(library.active)  # its KV (the visitor's text) leaves the server's memory
        return self.view(library.model_copy(update={"active": None}), None)

    def restart(self, store: dict, notice: str) -> list:
        """`new`, saying `notice` when the conversation it closes had messages."""
        current = Library.from_stored(store).current()
        view = self.new(store)
        if current and current.messages:
            view[4] = notice
        return view

    def select(self, conversation_id: str, store: dict) -> list:
        """Open a conversation from the list; the page's persona, model and settings follow it."""
        library = Library.from_stored(store)
        conversation = library.find(conversation_id)
        if conversation is None:
            return [*self.view(library, library.current()), *[gr.skip()] * (3 + len(SLIDERS))]
        self.stop(store)
        library = library.model_copy(update={"active": conversation.id})
        return [*self.view(library, conversation), *self.follow(conversation)]

    def follow(self, conversation: Conversation) -> list:
        """Updates of the persona, model, [persona, model] state and settings to match `conversation`."""
        model = conversation.model.id if conversation.model.id in self.engine.registry.ids() else gr.skip()
        persona = conversation.persona
        values = [conversation.settings.get(key, gr.skip()) for key in SLIDERS]
        return [persona, model, [persona, model if isinstance(model, str) else None], *values]

    def rename(self, title: str, store: dict) -> list:
        library = Library.from_stored(store)
        conversation, title = library.current(), " ".join((title or "").split())
        if conversation is None:
            raise gr.Error("Open a conversation first, then rename it.")
        if not title:
            raise gr.Error("A conversation's name cannot be empty.")
        renamed = conversation.model_copy(update={"title": title[:80]})
        return self.view(library.put(renamed), renamed)

    def delete(self, store: dict) -> list:
        library = Library.from_stored(store)
        if library.current() is None:
            raise gr.Error("Open a conversation first, then delete it.")
        self.stop(store)
        self.engine.forget(library.active)
        return self.view(library.remove(library.active), None, notice="Conversation deleted.")

    def export(self, store: dict) -> tuple:
        """The open conversation as a Markdown and a JSON file to download."""
        conversation = Library.from_stored(store).current()
        if conversation is None or not conversation.messages:
            raise gr.Error("Nothing to export yet: send a message first.")
        persona = next((p.name for p in self.personas if p.id == conversation.persona), None)
        stem = safe_filename(conversation.title, "")
        files = ((to_markdown(conversation, persona), f"{stem}.md"), (to_json(conversation), f"{stem}.json"))
        return tuple(gr.DownloadButton(value=str(write_download(text, name, "chats")), visible=True)
                     for text, name in files)

    def import_file(self, path: str | None, store: dict) -> list:
        """A JSON export read back (checked like any input) as a new conversation, opened."""
        library = Library.from_stored(store)
        if not path:
            return [*self.view(library, library.current()), *[gr.skip()] * (3 + len(SLIDERS))]
        with shown_errors(self.page):
            with open(path, "rb") as handle:  # one byte past the limit is enough to refuse a larger file
                conversation = load_transcript(handle.read(MAX_FILE_BYTES + 1), self.engine.settings)
        self.persona(conversation.persona)  # a persona this page does not have is refused by name
        if conversation.model.id not in self.engine.registry.ids():
            gr.Warning(f"This server has no model {conversation.model.id!r}; the conversation continues on the "
                       "model picked here.")
        library = library.put(conversation)
        return [*self.view(library, conversation, notice=f"Imported “{conversation.title}”."),
                *self.follow(conversation)]

    def restore(self, store: dict) -> list:
        """Page load: the conversation open before the reload, with its persona, model and settings."""
        library = Library.from_stored(store)
        conversation = library.current()
        follow = self.follow(conversation) if conversation else [gr.skip()] * (3 + len(SLIDERS))
        return [*self.view(library, conversation), *follow]

    def meter(self, store: dict, persona_id: str, model_id: str, *values: float) -> str:
        """Tokens the open conversation uses of the model's context (from the model's own tokenizer)."""
        conversation = Library.from_stored(store).current()
        if conversation is None or not conversation.messages:
            return ""
        try:
            persona = self.persona(persona_id)
            settings = self._chosen(persona_id, model_id, values)
            messages = conversation.chat()
            notes = self._passages(model_id, self._notes(values), messages)
            found = self.engine.context_usage(ChatRequest(model_id, messages, settings, conversation.id,
                                                          persona_id=persona.id, notes=notes))
        except Exception as err:  # noqa: BLE001 - the meter is a hint: whatever fails, it shows nothing
            log.info("%s: no context meter: %s", self.page, err)
            return ""
        return context_line(found.used, found.limit, found.dropped, found.reserve)

    # ---- what the chat shows -------------------------------------------------------------
    def footer(self, stats: AnswerStats | None) -> str:
        """`footer` with the training line of the answer's model, when it is still registered."""
        registry = self.engine.registry
        return footer(stats, registry.get(stats.model_id).training_line() if stats and stats.model_id in registry.ids()
                      else "")

    def view(self, library: Library, conversation: Conversation | None, message: object = gr.skip(),
             notice: str = "") -> list:
        """The chat's outputs (`ChatView.outputs`) for `conversation` open in `library`."""
        branches = conversation.branches if conversation else []
        return [conversation.shown() if conversation else [], library.stored(), message,
                self.footer(conversation.last_stats() if conversation else None), notice, "",
                gr.update(visible=bool(conversation and conversation.cut_off())),
                gr.update(choices=library.choices(), value=library.active),
                gr.update(choices=[(b.label(), i) for i, b in enumerate(branches)], value=None,
                          visible=bool(branches)), last_sources(conversation)]


@dataclass
class ChatView:
    """The components of one chat, in the order `Chat.view` fills them."""

    chatbot: gr.Chatbot
    store: gr.BrowserState
    message: gr.Textbox
    footer: gr.Markdown
    notice: gr.Markdown
    status: gr.Markdown
    continue_button: gr.Button
    conversations: gr.Radio
    branches: gr.Dropdown
    sources: gr.Markdown
    """The latest answer's sources, right under the chat."""
    send: gr.Button
    active: gr.State
    """[persona id, model id] of the open conversation (a page compares its pickers with it)."""
    answering: list
    """Events that stream an answer (a page adds its own, and cancels them when it starts a new conversation)."""
    followed: list
    """Events that open a stored conversation and set the persona, model and settings to its own."""

    @property
    def outputs(self) -> list:
        return [self.chatbot, self.store, self.message, self.footer, self.notice, self.status,
                self.continue_button, self.conversations, self.branches, self.sources]


def build_chat(chat: Chat, persona: gr.Component, model: gr.Component, settings: list[gr.Component],
               storage_key: str, ids: Mapping[str, str], label: str = "Conversation",
               placeholder: str = "Type your question and press Enter",
               senders: list[gr.Button] = (), notes: gr.Component | None = None, welcome: str = "") -> ChatView:
    """The chat's layout and events. `ids` names the elements (keys: chatbot, message, send, stop, retry,
    clear, footer, notice and a `prefix` for the rest); `settings` are values in `SLIDERS` order; `senders`
    are buttons (the page renders them) that send their own text; `notes`: the page's notes, handed to
    `chat.notes_for` with each question."""
    prefix = ids["prefix"]
    store = gr.BrowserState({}, storage_key=storage_key, secret=browser_secret(chat.engine.settings))
    side = _sidebar(prefix)
    notice = gr.Markdown("", elem_id=ids["notice"])
    branches = gr.Dropdown([], label="Other versions of this conversation (from edits and retries)",
                           visible=False, elem_id=f"{prefix}branches")
    chatbot = gr.Chatbot(height=460, buttons=["copy", "copy_all"], label=label, elem_id=ids["chatbot"],
                         feedback_options=None, editable="user", render_markdown=True,
                         max_height="60vh", min_height=240, placeholder=welcome or None)
    sources = gr.Markdown("", elem_id=f"{prefix}sources")
    status = gr.Markdown("", elem_id=f"{prefix}status")
    with gr.Row(equal_height=True):
        message = gr.Textbox(placeholder=placeholder, show_label=False, scale=6, min_width=150,
                             elem_id=ids["message"], max_length=chat.engine.settings.max_message_chars)
        send = gr.Button("Send", variant="primary", scale=1, min_width=60, elem_id=ids["send"])
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=60, elem_id=ids["stop"])
    with gr.Row():
        retry = gr.Button("Retry", size="sm", min_width=60, elem_id=ids["retry"])
        clear = gr.Button("Clear", size="sm", min_width=60, elem_id=ids["clear"])
        more = gr.Button("Continue", size="sm", min_width=60, visible=False, elem_id=f"{prefix}continue")
    meter = gr.Markdown("", elem_id=f"{prefix}meter")
    view = ChatView(chatbot, store, message, gr.Markdown("", elem_id=ids["footer"]), notice, status, more,
                    side["list"], branches, sources, send, gr.State([persona.value, model.value]), [], [])
    state = [store, persona, model, *settings, *([notes] if notes is not None else [])]
    follow = [persona, model, view.active, *settings]
    measured = {"fn": chat.meter, "inputs": state, "outputs": meter, "show_progress": "hidden", **PRIVATE}
    unmeasured = {"fn": lambda: "", "inputs": None, "outputs": meter, **PRIVATE}

    view.answering += [gr.on([send.click, message.submit], chat.respond, [message, *state], view.outputs, **PRIVATE),
                       gr.on([retry.click, chatbot.retry], chat.retry, state, view.outputs, **PRIVATE),
                       chatbot.edit(chat.edit, state, view.outputs, **PRIVATE),
                       more.click(chat.continue_answer, state, view.outputs, **PRIVATE)]
    view.answering += [button.click(chat.respond, [button, *state], view.outputs, **PRIVATE) for button in senders]
    stop.click(chat.stop, store, None, queue=False, **PRIVATE)
    # Leaving the open conversation drops the running answer's UI updates (cancels) and frees the model (stop).
    leave = {"cancels": view.answering, **PRIVATE}
    gr.on([clear.click, chatbot.clear, side["new"].click], chat.new, store, view.outputs, **leave).then(**unmeasured)
    side["delete"].click(chat.delete, store, view.outputs, **leave).then(**unmeasured)
    side["rename"].click(chat.rename, [side["title"], store], view.outputs, **PRIVATE)
    side["export"].click(chat.export, store, side["files"], **PRIVATE)
    for event in [*view.answering, branches.input(chat.switch_branch, [branches, store], view.outputs, **leave)]:
        event.then(**measured)
    view.followed += [side["list"].input(chat.select, [side["list"], store], [*view.outputs, *follow], **leave),
                      side["import"].upload(chat.import_file, [side["import"], store], [*view.outputs, *follow],
                                            **leave),
                      Context.root_block.load(chat.restore, store, [*view.outputs, *follow], **PRIVATE)]
    for event in view.followed:
        event.then(**measured)
    return view


def _sidebar(prefix: str) -> dict:
    """The conversations sidebar (closed at first: on a phone it would cover the chat)."""
    with gr.Sidebar(label="Conversations", open=False, elem_id=f"{prefix}sidebar"):
        side = {"new": gr.Button("New conversation", variant="primary", elem_id=f"{prefix}new"),
                "list": gr.Radio([], label="Your conversations (kept in this browser)", elem_id=f"{prefix}list"),
                "title": gr.Textbox(label="Name", placeholder="A name for the open conversation", max_length=80,
                                    elem_id=f"{prefix}title")}
        with gr.Row():
            side["rename"] = gr.Button("Rename", size="sm", elem_id=f"{prefix}rename")
            side["delete"] = gr.Button("Delete", size="sm", variant="stop", elem_id=f"{prefix}delete")
        side["export"] = gr.Button("Export", size="sm", elem_id=f"{prefix}export")
        with gr.Row():
            side["files"] = [gr.DownloadButton(name, visible=False, size="sm", elem_id=f"{prefix}export-{ext}")
                             for name, ext in (("Markdown", "md"), ("JSON", "json"))]
        side["import"] = gr.UploadButton("Import JSON", file_types=[".json"], size="sm", elem_id=f"{prefix}import")
    return side

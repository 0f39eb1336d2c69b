"""Support chat page (`/`): persona and model pickers, the shared chat (`pages/chat.py`), a `/chat` API.

UI only: every model call goes through `serving.engine.Engine`, personas come from `serving.personas`,
the chat itself (streaming, stop, retry, kept conversations, edit and branch, export, sources under each
answer) is the shared component. The UI events and the `/chat` API endpoint share one validation path (`Engine.check`), so a
bad persona/model id, message or setting gets the same short `gr.Error` from both.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import gradio as gr

from pages.chat import SLIDERS, Chat, build_chat, model_label, slider
from serving.engine import Engine, ModelStatus, ServingError
from serving.personas import PersonaBook
from serving.transcript import Library

log = logging.getLogger(__name__)
GROUP = "support"
N_EXAMPLES = 4
IDS = {"chatbot": "chatbot", "message": "message", "send": "send", "stop": "stop", "retry": "retry",
       "clear": "clear", "footer": "chat-footer", "notice": "chat-notice", "prefix": "chat-"}


def model_note(status: ModelStatus, description: str) -> str:
    """The line under the model picker: what the model is, or why it cannot be used now."""
    if not status.available:
        return f"**Unavailable:** {status.reason}"
    return f"_{description}_" + (f" ({status.reason})" if status.reason else "")


class SupportChat(Chat):
    """The shared chat with the support personas, plus the page's persona/model switch and the `/chat` API."""

    def __init__(self, engine: Engine, personas: PersonaBook):
        super().__init__(engine, personas.group(GROUP), "support chat")

    # ---- API -----------------------------------------------------------------------------
    def chat_api(self, message: str, persona_id: str = "order_assistant", model_id: str = "",
                 history: list | None = None, temperature: float | None = None, top_p: float | None = None,
                 max_new_tokens: int | None = None, repeat_penalty: float | None = None) -> Iterator[dict]:
        """Answer `message` as the support persona `persona_id` with `model_id` (empty: the default model).

        `history` is earlier turns as [{"role": "user"|"assistant", "content": str}, ...]; unset settings
        take the persona's defaults, chosen ones must lie in the UI sliders' ranges. Streams
        {"answer": str, "sources": [...], "check": {...} | None, "drafts": int, "notice": str | None}; the last
        value has the whole answer, the sources it was given ({"kind": "article"|"order", "title", "ref", "excerpt"}
        each), the answer's figures read against them ({"figures": int, "unbacked": [str, ...]}: the figures no
        source or message of the visitor's backs; None without sources), how many drafts it was chosen from (a
        persona's `drafts`; 1: written as streamed), and `notice` says what could not be looked up (order lookup
        unavailable). A client that disconnects stops the
        generation. Invalid input returns a short error naming what was wrong.
        """
        model_id = model_id or self.default_model()
        history = self._api_history(history)
        settings = self.settings(persona_id, model_id, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, repeat_penalty=repeat_penalty)
        request = self.request([*history, {"role": "user", "content": message}], persona_id, model_id, settings,
                               f"api-{uuid.uuid4().hex}")
        result = {"answer": "", "sources": [], "check": None, "drafts": 1, "notice": None}
        try:
            for batch in self.stream(request):  # a generator: Gradio closes it when the client goes away
                for kind, value in batch:
                    if kind == "token":
                        result["answer"] += value
                    elif kind == "notice":
                        result["notice"] = value
                    elif kind == "done":
                        result["sources"] = [source.model_dump() for source in value.sources]
                        result["check"] = value.check.model_dump(mode="json") if value.check else None
                        result["drafts"] = value.drafts
                yield dict(result)
        finally:
            self.engine.forget(request.conversation_id)  # API calls carry their whole history each time

    @staticmethod
    def _api_history(history: list | None) -> list[dict]:
        history = history or []
        if not isinstance(history, list):
            raise gr.Error("Invalid history: expected a list of {'role': 'user'|'assistant', 'content': str} items.")
        for i, turn in enumerate(history):
            if (not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant")
                    or not isinstance(turn.get("content"), str)):
                raise gr.Error(f"Invalid history item #{i + 1}: expected {{'role': 'user'|'assistant', "
                               "'content': str}.")
        return [{"role": t["role"], "content": t["content"]} for t in history]

    # ---- page state changes --------------------------------------------------------------
    def default_model(self) -> str:
        return self.engine.default_model("support")

    def switch(self, persona_id: str, model_id: str, store: dict, active: list[str] | None):
        """Persona or model changed: a new conversation (the old one stays in the list), persona defaults,
        example prompts. Returns at once; `prepare` loads the model in the next step, so a question sent while a
        model loads is answered after the load instead of being wiped by this event's late outputs."""
        if [persona_id, model_id] == list(active or []):  # the dropdown re-fired without a change
            return [gr.skip()] * (len(self.view(Library(), None)) + 3 + len(SLIDERS) + N_EXAMPLES)
        persona, status = self.persona(persona_id), self.model_status(model_id)
        defaults = self.defaults(persona_id, model_id)
        view = self.restart(store, f"Started a new conversation with **{persona.name}** on **{status.display_name}**.")
        if view[4]:
            gr.Info("Persona or model changed: started a new conversation.")
        if not status.available:
            gr.Warning(f"{status.display_name} is unavailable: {status.reason}.")
        about, note, *examples = self.describe(persona_id, model_id)
        view[0] = gr.update(value=view[0], placeholder=persona.welcome or None)  # the new persona's greeting
        return [*view, [persona_id, model_id], about, note, *[getattr(defaults, key) for key in SLIDERS], *examples]

    def welcome(self, persona_id: str):
        """The greeting an empty chat shows for `persona_id`."""
        return gr.update(placeholder=self.persona(persona_id).welcome or None)

    def describe(self, persona_id: str, model_id: str) -> list:
        """The persona's description, the model's note and the persona's example prompts."""
        persona, status = self.persona(persona_id), self.model_status(model_id)
        examples = [gr.Button(value=p, visible=True) for p in persona.example_prompts[:N_EXAMPLES]]
        examples += [gr.Button(visible=False)] * (N_EXAMPLES - len(examples))
        return [f"_{persona.description}_", model_note(status, self.engine.registry.get(model_id).description),
                *examples]

    def prepare(self, model_id: str, progress: gr.Progress = gr.Progress()):
        """Load the model now, behind a progress bar on its note (left as it is); a failure is a warning (the page
        stays usable)."""
        if self.model_status(model_id).available:
            try:
                self.engine.prepare(model_id, lambda fraction, text: progress(fraction, desc=text))
            except ServingError as err:
                log.warning("support chat: preparing %s failed: %s", model_id, err)
                gr.Warning(err.user_message)
        return gr.skip()


def build(engine: Engine, personas: PersonaBook | None = None) -> None:
    """Create the support chat page inside the current Blocks/route context and wire its events."""
    page = SupportChat(engine, personas or engine.personas)
    first, model_id = page.personas[0], page.default_model()
    defaults = page.defaults(first.id, model_id)

    gr.Markdown("## Customer support chat\nPick a support persona and a model, then ask a question.")
    with gr.Row():
        persona = gr.Dropdown([(p.name, p.id) for p in page.personas], value=first.id, label="Persona",
                              elem_id="persona", min_width=150)
        model = gr.Dropdown([(model_label(s), s.id) for s in engine.catalog()], value=model_id, label="Model",
                            elem_id="model", min_width=150)
    with gr.Row():
        about = gr.Markdown(f"_{first.description}_")
        model_info = gr.Markdown(model_note(engine.status(model_id), engine.registry.get(model_id).description),
                                 elem_id="model-info")
    sliders = [slider(key, getattr(defaults, key), f"set-{key}").unrender() for key in SLIDERS]
    prompts = [*first.example_prompts[:N_EXAMPLES], *[None] * N_EXAMPLES][:N_EXAMPLES]
    examples = [gr.Button(text, visible=text is not None, size="sm", elem_classes="example-prompt", render=False)
                for text in prompts]
    chat = build_chat(page, persona, model, sliders, "iris-support-chats", IDS, senders=examples,
                      welcome=first.welcome)
    with gr.Row():
        for button in examples:
            button.render()
    with gr.Accordion("Generation settings", open=False):
        for control in sliders:
            control.render()
    private = {"api_visibility": "private"}
    gr.on([persona.input, model.input], page.switch, [persona, model, chat.store, chat.active],
          [*chat.outputs, chat.active, about, model_info, *sliders, *examples], cancels=chat.answering,
          trigger_mode="always_last", **private).then(  # a second pick while the first loads is not lost
        page.prepare, model, model_info, show_progress="full", **private)
    for event in chat.followed:  # an opened conversation may be with another persona or model
        event.then(page.describe, [persona, model], [about, model_info, *examples], **private).then(
            page.welcome, persona, chat.chatbot, **private)
    gr.api(page.chat_api, api_name="chat")

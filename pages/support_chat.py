"""Support chat page (`/`): persona and model pickers, streaming chat with stop/retry/clear, a `/chat` API.

UI only: every model call goes through `serving.engine.Engine`, personas come from
`serving.personas`. The UI events and the `/chat` API endpoint share one validation path,
so a bad persona/model id, message or setting gets the same short `gr.Error` from both.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import gradio as gr

from serving.engine import ChatRequest, Engine, GenerationStats, ModelStatus, ServingError
from serving.generation import VISITOR_KNOBS, GenerationSettings, visitor_settings
from serving.personas import Persona, PersonaBook, load_personas
from serving.stops import StopFlags

log = logging.getLogger(__name__)
GROUP = "support"
N_EXAMPLES = 4
SLIDERS = {key: VISITOR_KNOBS[key] for key in ("temperature", "top_p", "max_new_tokens", "repeat_penalty")}


def model_label(status: ModelStatus) -> str:
    return status.display_name if status.available else f"{status.display_name} (unavailable)"


def model_note(status: ModelStatus, description: str) -> str:
    """The line under the model picker: what the model is, or why it cannot be used now."""
    if not status.available:
        return f"**Unavailable:** {status.reason}"
    return f"_{description}_" + (f" ({status.reason})" if status.reason else "")


def footer(stats: GenerationStats | None) -> str:
    if stats is None:
        return ""
    return (f"Model `{stats.model_id}` · {stats.quant} · {stats.tokens_per_s:.1f} tokens/s · "
            f"{stats.n_tokens} tokens · first token after {stats.ttft_s:.2f}s")


class SupportChat:
    """The page's handlers; holds the engine, the personas and the stop flags of running answers."""

    def __init__(self, engine: Engine, personas: PersonaBook):
        self.engine = engine
        self.personas = personas
        self.support = personas.group(GROUP)
        self.stops = StopFlags()

    # ---- validation shared by UI and API --------------------------------------------------
    def persona(self, persona_id: str) -> Persona:
        if not isinstance(persona_id, str) or persona_id not in {p.id for p in self.support}:
            raise gr.Error(f"Unknown persona {persona_id!r}; choose one of: {', '.join(p.id for p in self.support)}.")
        return self.personas.get(persona_id)

    def model_status(self, model_id: str) -> ModelStatus:
        try:
            return self.engine.status(model_id)
        except ServingError as err:
            raise gr.Error(err.user_message) from None

    def defaults(self, persona_id: str, model_id: str) -> GenerationSettings:
        """The persona's settings on top of the model's registry defaults."""
        if not isinstance(model_id, str) or model_id not in self.engine.registry.ids():
            raise gr.Error(f"Unknown model {model_id!r}; choose one of: {', '.join(self.engine.registry.ids())}.")
        return self.persona(persona_id).settings(self.engine.registry.get(model_id).generation)

    def settings(self, persona_id: str, model_id: str, **chosen: float | None) -> GenerationSettings:
        """Persona/model defaults with the chosen values; out-of-range values name the field and the range."""
        try:
            return visitor_settings(self.defaults(persona_id, model_id), **chosen)
        except ServingError as err:
            raise gr.Error(err.user_message) from None

    def request(self, message: str, history: list[dict], persona_id: str, model_id: str,
                settings: GenerationSettings, conversation_id: str) -> ChatRequest:
        persona = self.persona(persona_id)
        status = self.model_status(model_id)
        if not status.available:
            raise gr.Error(f"{status.display_name} is unavailable: {status.reason}.")
        messages = [{"role": "system", "content": persona.system_prompt}, *history,
                    {"role": "user", "content": message}]
        try:  # the engine's checks, asked before the page shows anything: one validation path for UI and API
            return self.engine.check(ChatRequest(model_id, messages, settings, conversation_id))
        except ServingError as err:
            raise gr.Error(err.user_message) from None

    # ---- generation ----------------------------------------------------------------------
    def stream(self, request: ChatRequest, progress: gr.Progress | None = None) -> Iterator[list[tuple[str, object]]]:
        """Batches of ("token"|"notice", text) and ("done", stats); engine errors become gr.Error.

        Generation runs in the engine's worker thread, so re-rendering the chat never slows the model.
        """
        report = (lambda fraction, text: progress(fraction, desc=text)) if progress else None
        try:
            with self.stops.run(request.conversation_id) as stop:
                for batch in self.engine.stream_batches(request, stop, report):
                    yield [(e.kind, e.stats if e.kind == "done" else e.text) for e in batch]
        except ServingError as err:
            log.warning("support chat: %s", err)
            raise gr.Error(err.user_message) from None

    def stop(self, conversation_id: str) -> None:
        """Stop every answer of this conversation that is being generated."""
        self.stops.stop(conversation_id)

    def respond(self, message: str, history: list[dict], persona_id: str, model_id: str, temperature: float,
                top_p: float, max_new_tokens: int, repeat_penalty: float, conversation_id: str,
                progress: gr.Progress = gr.Progress()):
        """UI handler: yields (chatbot, history, textbox, footer, notice) while the answer streams."""
        settings = self.settings(persona_id, model_id, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, repeat_penalty=repeat_penalty)
        request = self.request(message, history, persona_id, model_id, settings, conversation_id)
        answer = {"role": "assistant", "content": ""}
        shown = [*history, {"role": "user", "content": message}, answer]
        notice = gr.skip()
        yield shown, history, "", gr.skip(), notice
        try:
            for batch in self.stream(request, progress):
                for kind, value in batch:
                    if kind == "token":
                        answer["content"] += value
                    elif kind == "notice":
                        notice = value
                        gr.Info(value)
                    elif kind == "done":
                        if value.finish_reason == "cancelled":
                            answer["content"] += " [stopped]"
                        yield list(shown), list(shown), "", footer(value), notice
                        return
                yield list(shown), history, "", gr.skip(), notice
        except gr.Error:
            yield history, history, message, gr.skip(), notice  # put the message back to try again
            raise

    def retry(self, history: list[dict], persona_id: str, model_id: str, temperature: float, top_p: float,
              max_new_tokens: int, repeat_penalty: float, conversation_id: str,
              progress: gr.Progress = gr.Progress()):
        """Answer the last user message again."""
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            raise gr.Error("Nothing to retry yet: send a message first.")
        yield from self.respond(history[last_user]["content"], history[:last_user], persona_id, model_id,
                                temperature, top_p, max_new_tokens, repeat_penalty, conversation_id, progress)

    # ---- API -----------------------------------------------------------------------------
    def chat_api(self, message: str, persona_id: str = "order_assistant", model_id: str = "",
                 history: list | None = None, temperature: float | None = None, top_p: float | None = None,
                 max_new_tokens: int | None = None, repeat_penalty: float | None = None) -> Iterator[str]:
        """Answer `message` as the support persona `persona_id` with `model_id` (empty: the default model).

        `history` is earlier turns as [{"role": "user"|"assistant", "content": str}, ...]; unset settings
        take the persona's defaults, chosen ones must lie in the UI sliders' ranges. The answer streams
        (the last value is the whole answer); a client that disconnects stops the generation. Invalid
        input returns a short error naming what was wrong.
        """
        model_id = model_id or self.default_model()
        history = self._api_history(history)
        settings = self.settings(persona_id, model_id, temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, repeat_penalty=repeat_penalty)
        request = self.request(message, history, persona_id, model_id, settings, f"api-{uuid.uuid4().hex}")
        answer = ""
        try:
            for batch in self.stream(request):  # a generator: Gradio closes it when the client goes away
                answer += "".join(text for kind, text in batch if kind == "token")
                yield answer
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

    def switch(self, persona_id: str, model_id: str, history: list[dict], old_conversation: str,
               active: list[str], progress: gr.Progress = gr.Progress()):
        """Persona or model changed: fresh conversation, persona defaults, example prompts; load the model."""
        if [persona_id, model_id] == list(active):
            return [gr.skip()] * (8 + len(SLIDERS) + N_EXAMPLES)  # the dropdown re-fired without a change
        persona, status = self.persona(persona_id), self.model_status(model_id)
        self.stop(old_conversation)
        self.engine.forget(old_conversation)
        defaults = self.defaults(persona_id, model_id)
        notice = (f"Started a new conversation with **{persona.name}** on **{status.display_name}**."
                  if history else "")
        if history:
            gr.Info("Persona or model changed: started a new conversation.")
        if not status.available:
            gr.Warning(f"{status.display_name} is unavailable: {status.reason}.")
        else:
            self._prepare(model_id, progress)
        examples = [gr.Button(value=p, visible=True) for p in persona.example_prompts[:N_EXAMPLES]]
        examples += [gr.Button(visible=False)] * (N_EXAMPLES - len(examples))
        note = model_note(status, self.engine.registry.get(model_id).description)
        return [[], [], uuid.uuid4().hex, [persona_id, model_id], f"_{persona.description}_", note, notice, "",
                *[getattr(defaults, key) for key in SLIDERS], *examples]

    def _prepare(self, model_id: str, progress: gr.Progress) -> None:
        try:
            self.engine.prepare(model_id, lambda fraction, text: progress(fraction, desc=text))
        except ServingError as err:
            log.warning("support chat: preparing %s failed: %s", model_id, err)
            gr.Warning(err.user_message)

    def clear(self, conversation_id: str):
        self.stop(conversation_id)
        self.engine.forget(conversation_id)
        return [], [], uuid.uuid4().hex, "", ""


def build(engine: Engine, personas: PersonaBook | None = None) -> None:
    """Create the support chat page inside the current Blocks/route context and wire its events."""
    page = SupportChat(engine, personas or load_personas())
    first, model_id = page.support[0], page.default_model()
    defaults = page.defaults(first.id, model_id)

    gr.Markdown("## Customer support chat\nPick a support persona and a model, then ask a question.")
    with gr.Row():
        persona = gr.Dropdown([(p.name, p.id) for p in page.support], value=first.id, label="Persona",
                              elem_id="persona")
        model = gr.Dropdown([(model_label(s), s.id) for s in engine.catalog()], value=model_id, label="Model",
                            elem_id="model")
    with gr.Row():
        about = gr.Markdown(f"_{first.description}_")
        model_info = gr.Markdown(model_note(engine.status(model_id), engine.registry.get(model_id).description),
                                 elem_id="model-info")
    notice = gr.Markdown("", elem_id="chat-notice")
    chatbot = gr.Chatbot(height=460, buttons=["copy", "copy_all"], label="Conversation", elem_id="chatbot",
                         feedback_options=None)
    with gr.Row():
        message = gr.Textbox(placeholder="Type your question and press Enter", show_label=False, scale=6,
                             elem_id="message", max_length=engine.settings.max_message_chars)
        send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
    with gr.Row():
        examples = [gr.Button(text, size="sm", elem_classes="example-prompt")
                    for text in first.example_prompts[:N_EXAMPLES]]
        examples += [gr.Button(visible=False, size="sm", elem_classes="example-prompt")
                     for _ in range(N_EXAMPLES - len(examples))]
    with gr.Row():
        retry = gr.Button("Retry", size="sm", elem_id="retry")
        clear = gr.Button("Clear", size="sm", elem_id="clear")
    with gr.Accordion("Generation settings", open=False):
        sliders = [gr.Slider(k.minimum, k.maximum, value=getattr(defaults, key), step=k.step, label=k.label,
                             elem_id=f"set-{key}") for key, k in SLIDERS.items()]
    stats = gr.Markdown("", elem_id="chat-footer")
    history = gr.State([])
    conversation = gr.State(lambda: uuid.uuid4().hex)
    active = gr.State([first.id, model_id])  # the persona and model of the current conversation

    settings_in = [persona, model, *sliders, conversation]
    outputs = [chatbot, history, message, stats, notice]
    private = {"api_visibility": "private"}
    answering = [gr.on([send.click, message.submit], page.respond, [message, history, *settings_in], outputs,
                       **private)]
    answering += [button.click(page.respond, [button, history, *settings_in], outputs, **private)
                  for button in examples]
    answering.append(gr.on([retry.click, chatbot.retry], page.retry, [history, *settings_in], outputs, **private))
    stop.click(page.stop, conversation, None, queue=False, **private)
    # Clearing or switching drops the running answer's UI updates (cancels) and frees the model (stop flag).
    gr.on([clear.click, chatbot.clear], page.clear, conversation, [chatbot, history, conversation, stats, notice],
          cancels=answering, **private)
    gr.on([persona.input, model.input], page.switch, [persona, model, history, conversation, active],
          [chatbot, history, conversation, active, about, model_info, notice, stats, *sliders, *examples],
          cancels=answering,
          **private)
    gr.api(page.chat_api, api_name="chat")

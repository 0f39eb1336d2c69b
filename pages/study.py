"""Study tools page (`/study`): tutor chat, quiz, answer feedback, cheat sheet, planner, flashcards, drill.

UI only: one model dropdown and one "Your notes" area for the whole page, one tab per tool. Notes (pasted or
an uploaded .md/.txt) are checked and split by `serving.context.notes` before they are kept; the quiz, cheat
sheet, flashcards and drill then get the passages retrieved for their topic, the tutor chat those for each
question (`ChatRequest.notes`: the engine ends the tutor's system turn with them), and all show them as sources.
Every model call goes through
`serving.study.tools.StudyTools` (which uses the engine); dates, scores and files come from the pure
modules in `serving/study/`. Visitor errors (bad input, unusable model output, engine refusals) become
one short `gr.Error` (`pages.errors.shown_errors`); the log keeps the detail. The tutor chat is the shared
chat component (`pages/chat.py`), so both chats stream, stop, keep, branch and export conversations the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import gradio as gr

from pages.chat import SLIDERS, Chat, build_chat, model_label, sources_html
from pages.errors import shown_errors
from serving.context.notes import MAX_NOTES_BYTES, Notes, load_notes
from serving.context.render import passage_source
from serving.engine import Engine
from serving.personas import PersonaBook, load_personas
from serving.study import export, inputs, planner, scoring
from serving.study.inputs import MAX_CARDS, MAX_QUESTIONS, parse
from serving.study.schemas import LETTERS, ChoiceQuestion, Drill, Flashcard, Quiz
from serving.study.tools import DRILL_MIX, PERSONAS, StudyTools

log = logging.getLogger(__name__)
DIFFICULTIES = ["easy", "medium", "hard"]
NO_MATCH = "_No passage of your notes matches this topic: this comes from the model's own knowledge._"
TUTOR_IDS = {name: f"study-{name}" for name in ("chatbot", "message", "send", "stop", "retry", "clear", "footer",
                                                 "notice")} | {"prefix": "study-"}


def choice_labels(question: ChoiceQuestion) -> list[str]:
    return [f"{letter}. {option}" for letter, option in zip(LETTERS, question.options)]


def mark_text(mark: scoring.Mark) -> str:
    if mark.correct:
        head = "**Correct.**"
    elif mark.points > 0:
        head = f"**Partly right ({mark.points * 10:g}/10).** Model answer: {mark.expected}"
    elif mark.given:
        head = f"**Wrong.** Your answer: {mark.given}. Correct: {mark.expected}"
    else:
        head = f"**Not answered.** Correct: {mark.expected}"
    return f"{head}  \n{mark.explanation}" if mark.explanation else head


class StudyPage:
    """Handlers of the study tools; each returns plain values / updates for its tab."""

    def __init__(self, engine: Engine, personas: PersonaBook):
        self.tools = StudyTools(engine, personas)

    def prepare(self, model_id: str, progress: gr.Progress = gr.Progress()):
        """Model picked: download and load it now (progress shown on the dropdown) so the first tool starts fast."""
        with shown_errors("model"):
            self.tools.engine.prepare(model_id, lambda fraction, text: progress(fraction, desc=text))
        return gr.skip()

    # ---- notes ---------------------------------------------------------------------------
    @staticmethod
    def paste_notes(text: str):
        """Pasted notes checked and split; on a problem gr.Error and the kept notes stay as they were."""
        with shown_errors("notes"):
            notes = load_notes(text or "")
        return notes, notes.summary()

    @staticmethod
    def upload_notes(path: str | None):
        """An uploaded .md/.txt file checked (size, empty, binary, UTF-8) before it is kept."""
        if not path:
            return gr.skip(), gr.skip()
        with shown_errors("notes"):
            notes = load_notes(Path(path).read_bytes(), Path(path).name)
        return notes, notes.summary()

    def _sourced(self, model_id: str, notes: Notes | None, query: str):
        """(passages of the notes for `query`, their sources block, or a line saying none matched; "" without notes)."""
        passages = self.tools.passages(model_id, notes, query)
        if notes is not None and not passages:
            return passages, NO_MATCH
        return passages, sources_html([passage_source(p) for p in passages])

    # ---- quiz ----------------------------------------------------------------------------
    def make_quiz(self, model_id: str, topic: str, n_questions: float, difficulty: str, notes: Notes | None = None):
        with shown_errors("quiz"):
            request = parse(inputs.QuizRequest, topic=topic, n_questions=n_questions, difficulty=difficulty)
            passages, sources = self._sourced(model_id, notes, request.topic)
            quiz = self.tools.quiz(model_id, request, passages=passages)
        slots = []
        for i in range(MAX_QUESTIONS):
            question = quiz.questions[i] if i < len(quiz.questions) else None
            slots += [gr.Group(visible=question is not None),
                      f"**{i + 1}. {question.question}**" if question else "",
                      gr.Radio(choices=choice_labels(question) if question else [], value=None),
                      ""]
        return [quiz, gr.Button(visible=True), "", sources, *slots]

    def check_quiz(self, quiz: Quiz | None, *choices: str | None):
        if quiz is None:
            raise gr.Error("Generate a quiz first.")
        result = scoring.score_quiz(quiz, list(choices))
        marks = [mark_text(m) for m in result.marks] + [""] * (MAX_QUESTIONS - result.total)
        return [f"### {result.summary()}", *marks]

    # ---- feedback ------------------------------------------------------------------------
    def give_feedback(self, model_id: str, question: str, answer: str) -> str:
        with shown_errors("feedback"):
            feedback = self.tools.feedback(model_id, parse(inputs.FeedbackRequest, question=question, answer=answer))
        lines = [f"### Score: {feedback.score}/10", feedback.summary, "", "**What is right**"]
        lines += [f"- {point}" for point in feedback.correct] or ["- (nothing yet)"]
        lines += ["", "**What is missing or wrong**"]
        lines += [f"- {point}" for point in feedback.missing] or ["- (nothing)"]
        return "\n".join(lines)

    # ---- cheat sheet ---------------------------------------------------------------------
    def make_sheet(self, model_id: str, topic: str, notes: Notes | None = None):
        with shown_errors("cheat sheet"):
            request = parse(inputs.CheatSheetRequest, topic=topic)
            passages, sources = self._sourced(model_id, notes, request.topic)
            sheet = self.tools.cheat_sheet(model_id, request, passages=passages)
        markdown = export.cheat_sheet_markdown(sheet)
        path = export.write_download(markdown, export.safe_filename(topic, "-cheat-sheet.md"))
        return markdown, gr.DownloadButton(value=str(path), visible=True), sources

    # ---- planner -------------------------------------------------------------------------
    def make_plan(self, model_id: str, exam_name: str, exam_date: str | None, topics: str, hours: float):
        with shown_errors("planner"):
            request = parse(inputs.PlanRequest, exam_name=exam_name or "", exam_date=exam_date or "",
                            topics=inputs.split_topics(topics or ""), hours_per_day=hours, today=dt.date.today())
            sessions = self.tools.plan(model_id, request)
        name = request.exam_name or "Exam"
        stem = export.safe_filename(name, "-plan")
        csv_path = export.write_download(export.plan_csv(sessions), f"{stem}.csv")
        ics = export.plan_ics(sessions, request.exam_date, name, dt.datetime.now(dt.timezone.utc))
        ics_path = export.write_download(ics, f"{stem}.ics")
        summary = (f"**{request.n_days} days** to {name} on {request.exam_date:%A %d %B %Y}; "
                   f"{planner.review_days(request.n_days)} review day(s) at the end.")
        table = gr.Dataframe(value=[list(r) for r in export.plan_rows(sessions)], visible=True)
        return (summary, table, gr.DownloadButton(value=str(csv_path), visible=True),
                gr.DownloadButton(value=str(ics_path), visible=True))

    # ---- flashcards ----------------------------------------------------------------------
    def make_cards(self, model_id: str, topic: str, n_cards: float, notes: Notes | None = None):
        with shown_errors("flashcards"):
            request = parse(inputs.FlashcardsRequest, topic=topic, n_cards=n_cards)
            passages, sources = self._sourced(model_id, notes, request.topic)
            deck = self.tools.flashcards(model_id, request, passages=passages)
        path = export.write_download(export.flashcards_csv(deck.cards), export.safe_filename(topic, "-flashcards.csv"))
        cards = list(deck.cards)
        return [cards, 0, False, *self.card_view(cards, 0, False), gr.DownloadButton(value=str(path), visible=True),
                sources]

    @staticmethod
    def card_view(cards: list[Flashcard], index: int, back: bool) -> list[str]:
        if not cards:
            return ["", ""]
        card = cards[index]
        side = "Back" if back else "Front"
        return [f"## {card.back if back else card.front}", f"Card {index + 1} of {len(cards)} · {side}"]

    def flip(self, cards: list[Flashcard], index: int, back: bool):
        return [not back, *self.card_view(cards, index, not back)]

    def step(self, cards: list[Flashcard], index: int, delta: int):
        index = (index + delta) % len(cards) if cards else 0
        return [index, False, *self.card_view(cards, index, False)]

    # ---- drill ---------------------------------------------------------------------------
    def make_drill(self, model_id: str, topic: str, difficulty: str, notes: Notes | None = None):
        with shown_errors("drill"):
            request = parse(inputs.DrillRequest, topic=topic, difficulty=difficulty)
            passages, sources = self._sourced(model_id, notes, request.topic)
            drill = self.tools.drill(model_id, request, passages=passages)
        updates = []
        for q in drill.multiple_choice:
            updates += [f"**{q.question}**", gr.Radio(choices=choice_labels(q), value=None)]
        for q in drill.true_false:
            updates += [f"**True or false?** {q.statement}", gr.Radio(value=None)]
        for q in drill.short_answer:
            updates += [f"**{q.question}**", gr.Textbox(value="")]
        return [drill, gr.Column(visible=True), "", sources, *updates, *[""] * sum(DRILL_MIX)]

    def score_drill(self, model_id: str, drill: Drill | None, *answers: str | None):
        if drill is None:
            raise gr.Error("Generate a drill first.")
        n_choice, n_tf, _ = DRILL_MIX
        choices, tf, short = answers[:n_choice], answers[n_choice : n_choice + n_tf], answers[n_choice + n_tf :]
        with shown_errors("drill"):
            short_scores = self.tools.mark_short_answers(model_id, drill, list(short))
        truth = [None if v is None else v == "True" for v in tf]
        result = scoring.score_drill(drill, list(choices), truth, list(short), short_scores)
        return [f"### {result.summary()}", *[mark_text(m) for m in result.marks]]


# ---- layout ------------------------------------------------------------------------------
def _chat_tab(page: StudyPage, engine: Engine, personas: PersonaBook, model: gr.Dropdown, notes: gr.State) -> None:
    chat = Chat(engine, [personas.get(PERSONAS["chat"])], "study tutor", notes_for=page.tools.tutor_notes)
    tutor = chat.personas[0]
    defaults = tutor.settings(engine.registry.get(model.value).generation)
    gr.Markdown(f"_{tutor.description}_")
    fixed = [gr.State(getattr(defaults, key)) for key in SLIDERS]
    view = build_chat(chat, gr.State(tutor.id), model, fixed, "iris-study-chats", TUTOR_IDS, label="Tutor",
                      placeholder="Ask the tutor", notes=notes, welcome=tutor.welcome)
    model.input(lambda store: chat.restart(store, "Model changed: started a new conversation with the tutor."),
                view.store, view.outputs, cancels=view.answering, api_visibility="private")


def _quiz_tab(page: StudyPage, model: gr.Dropdown, notes: gr.State) -> None:
    with gr.Row():
        topic = gr.Textbox(label="Topic", placeholder="e.g. the water cycle", scale=3, elem_id="quiz-topic")
        count = gr.Slider(1, MAX_QUESTIONS, value=5, step=1, label="Questions", elem_id="quiz-count")
        difficulty = gr.Radio(DIFFICULTIES, value="medium", label="Difficulty")
    generate = gr.Button("Generate quiz", variant="primary", elem_id="quiz-generate")
    quiz = gr.State(None)
    slots, radios, marks = [], [], []
    for i in range(MAX_QUESTIONS):
        with gr.Group(visible=False, elem_classes="quiz-question") as group:
            text = gr.Markdown()
            radio = gr.Radio([], label="Your answer", elem_id=f"quiz-q{i + 1}")
            mark = gr.Markdown(elem_id=f"quiz-mark{i + 1}")
        slots += [group, text, radio, mark]
        radios.append(radio)
        marks.append(mark)
    check = gr.Button("Check answers", visible=False, variant="primary", elem_id="quiz-check")
    score = gr.Markdown(elem_id="quiz-score")
    sources = gr.Markdown(elem_id="quiz-sources")
    generate.click(page.make_quiz, [model, topic, count, difficulty, notes], [quiz, check, score, sources, *slots],
                   api_visibility="private")
    check.click(page.check_quiz, [quiz, *radios], [score, *marks], api_visibility="private")


def _feedback_tab(page: StudyPage, model: gr.Dropdown) -> None:
    question = gr.Textbox(label="Question", lines=2, elem_id="feedback-question")
    answer = gr.Textbox(label="Your answer", lines=5, elem_id="feedback-answer")
    button = gr.Button("Get feedback", variant="primary", elem_id="feedback-go")
    result = gr.Markdown(elem_id="feedback-result")
    button.click(page.give_feedback, [model, question, answer], result, api_visibility="private")


def _sheet_tab(page: StudyPage, model: gr.Dropdown, notes: gr.State) -> None:
    topic = gr.Textbox(label="Topic", placeholder="e.g. Newton's laws", elem_id="sheet-topic")
    button = gr.Button("Make cheat sheet", variant="primary", elem_id="sheet-go")
    sheet = gr.Markdown(elem_id="sheet-result")
    download = gr.DownloadButton("Download .md", visible=False, elem_id="sheet-download")
    sources = gr.Markdown(elem_id="sheet-sources")
    button.click(page.make_sheet, [model, topic, notes], [sheet, download, sources], api_visibility="private")


def _plan_tab(page: StudyPage, model: gr.Dropdown) -> None:
    with gr.Row():
        name = gr.Textbox(label="Exam", placeholder="e.g. Biology final", elem_id="plan-name")
        exam_date = gr.DateTime(value=(dt.date.today() + dt.timedelta(days=14)).isoformat(), include_time=False,
                                type="string", label="Exam date", elem_id="plan-date")
        hours = gr.Number(value=2, label="Hours per day", elem_id="plan-hours")
    topics = gr.Textbox(label="Topics (one per line or comma-separated)", lines=3, elem_id="plan-topics")
    button = gr.Button("Make plan", variant="primary", elem_id="plan-go")
    summary = gr.Markdown(elem_id="plan-summary")
    table = gr.Dataframe(headers=list(export.PLAN_COLUMNS), visible=False, interactive=False, wrap=True,
                         elem_id="plan-table")
    with gr.Row():
        csv_file = gr.DownloadButton("Download CSV", visible=False, elem_id="plan-csv")
        ics_file = gr.DownloadButton("Download calendar (.ics)", visible=False, elem_id="plan-ics")
    button.click(page.make_plan, [model, name, exam_date, topics, hours], [summary, table, csv_file, ics_file],
                 api_visibility="private")


def _cards_tab(page: StudyPage, model: gr.Dropdown, notes: gr.State) -> None:
    with gr.Row():
        topic = gr.Textbox(label="Topic", placeholder="e.g. French irregular verbs", scale=3, elem_id="cards-topic")
        count = gr.Slider(1, MAX_CARDS, value=6, step=1, label="Cards", elem_id="cards-count")
    generate = gr.Button("Make flashcards", variant="primary", elem_id="cards-go")
    cards, index, back = gr.State([]), gr.State(0), gr.State(False)
    face = gr.Markdown(elem_id="card-face")
    position = gr.Markdown(elem_id="card-position")
    with gr.Row():
        previous = gr.Button("◀ Previous", elem_id="card-prev")
        flip = gr.Button("Flip", variant="primary", elem_id="card-flip")
        following = gr.Button("Next ▶", elem_id="card-next")
    download = gr.DownloadButton("Download for Anki (CSV)", visible=False, elem_id="cards-download")
    sources = gr.Markdown(elem_id="cards-sources")
    view = [face, position]
    generate.click(page.make_cards, [model, topic, count, notes], [cards, index, back, *view, download, sources],
                   api_visibility="private")
    flip.click(page.flip, [cards, index, back], [back, *view], api_visibility="private")
    previous.click(lambda c, i: page.step(c, i, -1), [cards, index], [index, back, *view], api_visibility="private")
    following.click(lambda c, i: page.step(c, i, 1), [cards, index], [index, back, *view], api_visibility="private")


def _drill_tab(page: StudyPage, model: gr.Dropdown, notes: gr.State) -> None:
    n_choice, n_tf, n_short = DRILL_MIX
    gr.Markdown(f"A mock exam: {n_choice} multiple-choice, {n_tf} true/false and {n_short} short-answer "
                "question(s), scored at the end (short answers are marked by the model).")
    with gr.Row():
        topic = gr.Textbox(label="Topic", scale=3, elem_id="drill-topic")
        difficulty = gr.Radio(DIFFICULTIES, value="medium", label="Difficulty")
    generate = gr.Button("Start drill", variant="primary", elem_id="drill-go")
    drill = gr.State(None)
    prompts, answers, marks = [], [], []
    with gr.Column(visible=False) as exam:
        for i in range(sum(DRILL_MIX)):
            prompts.append(gr.Markdown())
            if i < n_choice:
                answers.append(gr.Radio([], label="Your answer", elem_id=f"drill-a{i + 1}"))
            elif i < n_choice + n_tf:
                answers.append(gr.Radio(["True", "False"], label="Your answer", elem_id=f"drill-a{i + 1}"))
            else:
                answers.append(gr.Textbox(label="Your answer", lines=3, elem_id=f"drill-a{i + 1}"))
            marks.append(gr.Markdown())
        finish = gr.Button("Finish and score", variant="primary", elem_id="drill-finish")
    score = gr.Markdown(elem_id="drill-score")
    sources = gr.Markdown(elem_id="drill-sources")
    pairs = [c for pair in zip(prompts, answers) for c in pair]
    generate.click(page.make_drill, [model, topic, difficulty, notes], [drill, exam, score, sources, *pairs, *marks],
                   api_visibility="private")
    finish.click(page.score_drill, [model, drill, *answers], [score, *marks], api_visibility="private")


def _notes_area(page: StudyPage) -> gr.State:
    """The page's one notes area: paste or upload, checked before kept; the kept notes' summary shown."""
    notes = gr.State(None)
    with gr.Accordion("Your notes (optional): study from your own material", open=False, elem_id="notes-area"):
        gr.Markdown(f"Paste notes or upload a .md/.txt file (up to {MAX_NOTES_BYTES // 1000} KB). The tutor, quiz, "
                    "cheat sheet, flashcards and drill then use the passages that match the question or topic and "
                    "show them as sources.")
        text = gr.Textbox(label="Paste notes", lines=6, elem_id="notes-text")
        with gr.Row():
            use = gr.Button("Use pasted notes", elem_id="notes-use")
            upload = gr.UploadButton("Upload .md / .txt", file_types=[".md", ".txt"], type="filepath",
                                     elem_id="notes-upload")
            clear = gr.Button("Forget notes", elem_id="notes-clear")
        status = gr.Markdown("No notes: the tools use the model's own knowledge.", elem_id="notes-status")
    use.click(page.paste_notes, text, [notes, status], api_visibility="private")
    upload.upload(page.upload_notes, upload, [notes, status], api_visibility="private")
    clear.click(lambda: (None, "No notes: the tools use the model's own knowledge."), None, [notes, status],
                api_visibility="private")
    return notes


def build(engine: Engine, personas: PersonaBook | None = None) -> None:
    """Create the study page inside the current Blocks/route context and wire its events."""
    personas = personas or load_personas()
    page = StudyPage(engine, personas)
    gr.Markdown("## Study tools\nPick a model, then a tool. Everything runs on the model you pick here.")
    model = gr.Dropdown([(model_label(s), s.id) for s in engine.catalog()],
                        value=engine.default_model("study"), label="Model", elem_id="study-model")
    notes = _notes_area(page)
    tabs = {"Study chat": lambda: _chat_tab(page, engine, personas, model, notes),
            "Quiz": lambda: _quiz_tab(page, model, notes),
            "Answer feedback": lambda: _feedback_tab(page, model),
            "Cheat sheet": lambda: _sheet_tab(page, model, notes), "Study planner": lambda: _plan_tab(page, model),
            "Flashcards": lambda: _cards_tab(page, model, notes), "Mixed drill": lambda: _drill_tab(page, model, notes)}
    with gr.Tabs():
        for label, build_tab in tabs.items():
            with gr.Tab(label, elem_id=f"tab-{label.lower().replace(' ', '-')}"):
                build_tab()
    model.input(page.prepare, model, model, api_visibility="private")

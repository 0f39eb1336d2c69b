"""Deterministic generator of the demo models' bundled data (`python -m training.demo.datagen`).

Writes data/demo/{support,support_test,general,study}.jsonl (chat records
`{"messages": [{"role", "content"}, ...]}`; support records also carry their `intent`)
and data/demo/corpus.txt (plain paragraphs for pretraining), and data/support/{train,test}.jsonl,
the real-model support set: the app's persona system prompts, and a test split whose customer
phrasings never occur in training, each test record carrying the shop facts its answer must state
(`facts`). Same seed, same bytes:
all randomness comes from one `random.Random(seed)` per file. It only writes text;
tokenizing and training live in `pretrain`/`finetune`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from training.demo import general_data as g
from training.demo import support_data as s

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "demo"
SUPPORT_DATA_DIR = REPO_ROOT / "data" / "support"
PERSONAS_DIR = REPO_ROOT / "personas"
# Which app persona answers each intent (the support page's personas, personas/*.yaml).
PERSONA_OF_INTENT = {"order_status": "order_assistant", "shipping": "order_assistant",
                     "refund_return": "order_assistant", "cancellation": "order_assistant",
                     "payment": "billing_pricing", "billing_pricing": "billing_pricing",
                     "account_login": "technical_support", "technical": "technical_support",
                     "product_question": "sales_advisor"}
# Shop policy facts a reply template states outright (slot values such as {days} are not facts).
FACT_RE = re.compile(r"\$\d+(?:\.\d\d)?|\d+%|\d+ to \d+|\b\d+ (?:business days|days|minutes|hours|seconds)\b|"
                     r"\b(?:one-year|two years)\b")
Record = dict


@dataclass(frozen=True)
class DataSizes:
    """How many records each bundled file gets."""

    support: int = 1200
    """Support dialogues for fine-tuning."""
    support_test: int = 100
    """Held-out support dialogues (not in `support`)."""
    general: int = 1500
    """General assistant chats."""
    study: int = 1500
    """Study-style chats."""
    corpus: int = 1500
    """Plain-text paragraphs."""
    support_train: int = 3000
    """Real-model support dialogues (data/support/train.jsonl)."""
    support_heldout: int = 150
    """Real-model held-out dialogues with unseen phrasings (data/support/test.jsonl)."""


# ---------------------------------------------------------------- helpers


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def chat(*turns: str, system: str | None = None) -> list[dict]:
    """Alternate user/assistant turns into a messages list."""
    messages = [{"role": "system", "content": system}] if system else []
    roles = ("user", "assistant")
    return messages + [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


_SHORTHAND = (("you", "u"), ("please", "pls"), ("I'm", "im"), ("don't", "dont"), ("it's", "its"),
              ("can't", "cant"), ("haven't", "havent"), ("thanks", "thx"), ("are", "r"))


def add_typos(text: str, rng: random.Random) -> str:
    """Make a customer message look typed in a hurry (case, shorthand, a swapped letter, punctuation)."""
    if rng.random() < 0.3:
        for word, short in _SHORTHAND:
            if rng.random() < 0.6:
                text = text.replace(f" {word} ", f" {short} ").replace(f"{cap(word)} ", f"{cap(short)} ")
    if rng.random() < 0.25:
        words = text.split(" ")
        i = rng.randrange(len(words))
        w = words[i]
        if len(w) > 3 and w.isalpha():
            j = rng.randrange(len(w) - 1)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        text = " ".join(words)
    if rng.random() < 0.3:
        text = text.lower()
    if rng.random() < 0.2:
        text = text.rstrip(".?!") + rng.choice(("", "??", "!!", " ?"))
    return text


def support_slots(rng: random.Random) -> dict[str, str]:
    number = rng.randint(10000, 99999)
    return {
        "order": f"BL-{number}", "product": rng.choice(s.PRODUCTS), "gadget": rng.choice(s.GADGETS),
        "days": str(rng.randint(2, 5)), "weekday": rng.choice(s.WEEKDAYS), "carrier": rng.choice(s.CARRIERS),
        "payment": rng.choice(s.PAYMENT_METHODS), "device": rng.choice(s.DEVICES), "plan": rng.choice(s.PLANS),
        "city": rng.choice(s.CITIES), "country": rng.choice(s.COUNTRIES),
        "order_typed": rng.choice((f"BL-{number}", f"#BL-{number}", f"bl{number}", f"BL{number}", f"#{number}")),
    }


# ---------------------------------------------------------------- support dialogues


def _customer(template: str, slots: dict[str, str], rng: random.Random) -> str:
    text = template.format(**{**slots, "order": slots["order_typed"]})
    greeting = rng.choice(("", "", "", "Hi, ", "Hello, ", "hey ", "Good morning, "))
    return add_typos(greeting + (text if not greeting else text[:1].lower() + text[1:]), rng)


def _exchanges(rng: random.Random, intent: s.Intent, case: s.Case, slots: dict[str, str], openers: tuple[str, ...],
               vague_share: float) -> list[str]:
    """The customer's question (sometimes vague first, then the order number), the reply, maybe a follow-up."""
    turns: list[str] = []
    if case.vague and rng.random() < vague_share:
        turns += [_customer(rng.choice(case.vague), slots, rng), rng.choice(s.ASK_ORDER)]
        turns.append(add_typos(rng.choice(s.GIVE_ORDER).format(order=slots["order_typed"]), rng))
    else:
        turns.append(_customer(rng.choice(openers), slots, rng))
    turns.append(rng.choice(case.replies).format(**slots))
    follow_ups = case.follow_ups + intent.follow_ups
    if follow_ups and rng.random() < 0.4:
        question, answer = rng.choice(follow_ups)
        turns += [add_typos(question, rng), answer.format(**slots)]
    return turns


def support_dialogue(rng: random.Random) -> Record:
    """One support conversation: 1 to 3 exchanges, sometimes with a system prompt."""
    intent = rng.choice(s.INTENTS)
    case = rng.choice(intent.cases)
    slots = support_slots(rng)
    turns = _exchanges(rng, intent, case, slots, case.openers, vague_share=0.35)
    if rng.random() < 0.15:
        turns += list(rng.choice(s.THANKS))
    system = rng.choice(s.SYSTEM_PROMPTS) if rng.random() < 0.35 else None
    return {"intent": intent.name, "messages": chat(*turns, system=system)}


# ---------------------------------------------------------------- real-model support set


def held_out(openers: tuple[str, ...]) -> tuple[str, ...]:
    """The phrasing kept for testing: every case's last opener (each case has at least two)."""
    return openers[-1:] if len(openers) >= 2 else ()


def persona_prompts(folder: Path = PERSONAS_DIR) -> dict[str, str]:
    """{persona id: system prompt} of the support personas the intents map to."""
    import yaml

    return {pid: yaml.safe_load((folder / f"{pid}.yaml").read_text(encoding="utf-8"))["system_prompt"]
            for pid in set(PERSONA_OF_INTENT.values())}


def reply_facts(template: str, slots: dict[str, str], customer_gave_order: bool) -> list[str]:
    """Facts an answer from `template` must state: its policy numbers, and the order id the customer gave."""
    facts = FACT_RE.findall(template)
    if customer_gave_order and "{order}" in template:
        facts.append(slots["order"])
    return list(dict.fromkeys(facts))


def _system_for(intent: str, personas: dict[str, str], rng: random.Random) -> str | None:
    roll = rng.random()
    return personas[PERSONA_OF_INTENT[intent]] if roll < 0.6 else rng.choice(s.SYSTEM_PROMPTS) if roll < 0.8 else None


def support_train_dialogue(rng: random.Random, personas: dict[str, str]) -> Record:
    """Like `support_dialogue`, but never with a held-out phrasing, and usually with the intent's persona."""
    intent = rng.choice(s.INTENTS)
    case = rng.choice(intent.cases)
    slots = support_slots(rng)
    openers = tuple(o for o in case.openers if o not in held_out(case.openers))
    turns = _exchanges(rng, intent, case, slots, openers, vague_share=0.3)
    return {"intent": intent.name, "messages": chat(*turns, system=_system_for(intent.name, personas, rng))}


def support_test_dialogue(rng: random.Random, personas: dict[str, str]) -> Record:
    """One held-out question in a phrasing training never saw, the reference answer, and its `facts`."""
    intent = rng.choice([i for i in s.INTENTS if any(held_out(c.openers) for c in i.cases)])
    case = rng.choice([c for c in intent.cases if held_out(c.openers)])
    slots = support_slots(rng)
    opener = held_out(case.openers)[0]
    template = rng.choice(case.replies)
    messages = chat(_customer(opener, slots, rng), template.format(**slots), system=personas[PERSONA_OF_INTENT[intent.name]])
    return {"intent": intent.name, "messages": messages, "facts": reply_facts(template, slots, "{order}" in opener)}


# ---------------------------------------------------------------- general assistant


def _greeting(rng: random.Random) -> list[dict]:
    hello = rng.choice(("Hi!", "Hello", "hey there", "Good morning!", "Hi, how are you?", "hello!!"))
    reply = rng.choice(("Hello! How can I help you today?", "Hi there! What can I do for you?",
                        "I'm doing well, thank you! How can I help?"))
    return chat(hello, reply)


def _identity(rng: random.Random) -> list[dict]:
    question = rng.choice(("Who are you?", "What can you do?", "what are you", "Are you a robot?"))
    return chat(question, "I'm Iris, a small assistant. I can answer simple questions, explain school topics "
                          "and help with short writing tasks.")


def _country(rng: random.Random) -> list[dict]:
    country, capital, continent, language = rng.choice(g.COUNTRIES)
    return rng.choice((
        chat(f"What is the capital of {country}?", f"The capital of {country} is {capital}."),
        chat(f"What language do people speak in {country}?", f"People in {country} mainly speak {language}."),
        chat(f"Where is {country}?", f"{country} is in {continent}. Its capital is {capital}."),
        chat(f"Tell me about {capital}.", f"{capital} is the capital city of {country}, in {continent}."),
    ))


def _animal(rng: random.Random) -> list[dict]:
    animal, kind, habitat, diet, fact = rng.choice(g.ANIMALS)
    return rng.choice((
        chat(f"Tell me about the {animal}.",
             f"The {animal} is a {kind} that lives in {habitat}. It eats {diet}, and {fact}."),
        chat(f"What does a {animal} eat?", f"A {animal} mostly eats {diet}."),
        chat(f"Where do {animal}s live?", f"{cap(animal)}s live in {habitat}."),
        chat(f"Give me a fun fact about the {animal}.", f"Here is one: {fact}."),
    ))


def _arithmetic(rng: random.Random) -> list[dict]:
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    op, word, value = rng.choice((("+", "plus", a + b), ("*", "times", a * b), ("-", "minus", a - b)))
    question = rng.choice((f"What is {a} {word} {b}?", f"what's {a} {op} {b}", f"Can you calculate {a} {op} {b}?"))
    return chat(question, f"{a} {word} {b} is {value}.")


def _advice(rng: random.Random) -> list[dict]:
    topic, tips = rng.choice(g.ADVICE)
    question = rng.choice((f"How can I {topic}?", f"Any tips to {topic}?", f"I want to {topic}. What should I do?"))
    steps = "\n".join(f"{i}. {cap(t)}." for i, t in enumerate(tips, 1))
    return chat(question, f"Here are three tips to {topic}:\n{steps}")


def _colour(rng: random.Random) -> list[dict]:
    a, b, mix = rng.choice(g.COLOURS)
    return chat(f"What colour do you get when you mix {a} and {b}?", f"Mixing {a} and {b} gives {mix}.")


def _thanks_chat(rng: random.Random) -> list[dict]:
    first = rng.choice((_country, _animal, _colour, _arithmetic))(rng)
    return first + chat("Thank you!", rng.choice(("You're welcome!", "Happy to help!", "Anytime!")))


_GENERAL: tuple[Callable[[random.Random], list[dict]], ...] = (
    _greeting, _identity, _country, _country, _animal, _animal, _arithmetic, _advice, _advice, _colour,
    _thanks_chat,
)


def general_record(rng: random.Random) -> Record:
    return {"messages": rng.choice(_GENERAL)(rng)}


# ---------------------------------------------------------------- study


def _define(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    question = rng.choice((f"What is {term}?", f"Define {term}.", f"what does {term} mean?", f"What's {term}?"))
    return chat(question, f"{cap(term)} is {definition}. {explanation}.")


def _explain(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    question = rng.choice((f"Explain {term} in simple terms.", f"Can you explain {term} to me?",
                           f"I don't understand {term}. Can you help?"))
    return chat(question, f"Sure. {cap(term)} is {definition}. {explanation}. For example, think of {example}.")


def _example(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    return chat(f"Give me an example of {term}.", f"A good example of {term} is {example}.")


def _flashcard(term: str, definition: str, explanation: str, example: str, rng: random.Random) -> list[dict]:
    return chat(f"Make a flashcard for {term}.", f"Front: What is {term}?\nBack: {cap(definition)}.")


_STUDY_FORMS = (_define, _define, _explain, _explain, _example, _flashcard)


def _multiple_choice(rng: random.Random) -> list[dict]:
    options = rng.sample(g.CONCEPTS, 3)
    answer = rng.randrange(3)
    term, _, definition, explanation, _ = options[answer]
    letters = "ABC"
    listed = " ".join(f"{letters[i]}) {o[0]}" for i, o in enumerate(options))
    return chat(f"Quiz: which of these is {definition}? {listed}",
                f"The answer is {letters[answer]}) {term}. {explanation}.")


def _true_false(rng: random.Random) -> list[dict]:
    (term, _, definition, _, _), other = rng.sample(g.CONCEPTS, 2)
    if rng.random() < 0.5:
        return chat(f"True or false: {term} is {definition}.", f"True. {cap(term)} is {definition}.")
    return chat(f"True or false: {term} is {other[2]}.",
                f"False. {cap(term)} is {definition}. The statement describes {other[0]}.")


def _quiz_dialogue(rng: random.Random) -> list[dict]:
    term, subject, definition, explanation, _ = rng.choice(g.CONCEPTS)
    right = rng.random() < 0.6
    guess = definition if right else rng.choice(g.CONCEPTS)[2]
    verdict = "Correct!" if right and guess == definition else f"Not quite. {cap(term)} is {definition}."
    return chat(f"Quiz me on {subject}.", f"Here is a question: what is {term}?",
                f"I think it is {guess}.", f"{verdict} {explanation}.")


def study_record(rng: random.Random) -> Record:
    roll = rng.random()
    if roll < 0.15:
        return {"messages": _multiple_choice(rng)}
    if roll < 0.25:
        return {"messages": _true_false(rng)}
    if roll < 0.35:
        return {"messages": _quiz_dialogue(rng)}
    form = rng.choice(_STUDY_FORMS)
    return {"messages": form(*_concept_fields(rng), rng)}


def _concept_fields(rng: random.Random) -> tuple[str, str, str, str]:
    term, _, definition, explanation, example = rng.choice(g.CONCEPTS)
    return term, definition, explanation, example


# ---------------------------------------------------------------- plain-text corpus


def _concept_paragraph(rng: random.Random) -> str:
    term, subject, definition, explanation, example = rng.choice(g.CONCEPTS)
    return (f"{cap(term)} is {definition}. {explanation}. A simple example is {example}. "
            f"Students usually learn about {term} in {subject} lessons.")


def _country_paragraph(rng: random.Random) -> str:
    country, capital, continent, language = rng.choice(g.COUNTRIES)
    return (f"{country} is a country in {continent}. Its capital is {capital}, and most people there speak "
            f"{language}. Many visitors travel to {capital} every year.")


def _animal_paragraph(rng: random.Random) -> str:
    animal, kind, habitat, diet, fact = rng.choice(g.ANIMALS)
    return (f"The {animal} is a {kind} that lives in {habitat}. It eats {diet}. "
            f"One interesting fact about the {animal} is that {fact}.")


def _story_paragraph(rng: random.Random) -> str:
    p = {k: rng.choice(v) for k, v in g.STORY_PARTS.items()}
    return (f"Once upon a time, in {p['place']}, there lived {p['role']} named {p['name']}. "
            f"{p['name']} wanted to {p['goal']}. But {p['obstacle']}. {p['name']} did not give up, "
            f"kept trying every day, {p['ending']}.")


def _advice_paragraph(rng: random.Random) -> str:
    topic, tips = rng.choice(g.ADVICE)
    return f"If you want to {topic}, there are a few simple habits that help. First, {tips[0]}. " \
           f"Second, {tips[1]}. Finally, {tips[2]}."


def _catalogue_paragraph(rng: random.Random) -> str:
    first, second = rng.sample(s.PRODUCTS, 2)
    slots = {"product": first, "product2": second, "shop": s.SHOP, "number": rng.randint(10000, 99999)}
    return " ".join(cap(line.format(**slots)) for line in rng.sample(g.CATALOGUE, 3))


_PARAGRAPHS = (_concept_paragraph, _concept_paragraph, _country_paragraph, _animal_paragraph,
               _story_paragraph, _story_paragraph, _advice_paragraph, _catalogue_paragraph)


def corpus_paragraph(rng: random.Random) -> str:
    return rng.choice(_PARAGRAPHS)(rng)


# ---------------------------------------------------------------- files


def _records(make: Callable[[random.Random], Record], n: int, seed: int, exclude: set[str] = frozenset()
             ) -> Iterator[Record]:
    rng = random.Random(seed)
    produced = 0
    while produced < n:
        record = make(rng)
        if json.dumps(record["messages"]) not in exclude:
            produced += 1
            yield record


def _write_jsonl(path: Path, records: list[Record]) -> None:
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(out_dir: Path = DEFAULT_DATA_DIR, seed: int = 0, sizes: DataSizes = DataSizes(),
             support_dir: Path = SUPPORT_DATA_DIR) -> dict[str, Path]:
    """Write every bundled file under `out_dir` (and the real-model set under `support_dir`); returns {name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    support = list(_records(support_dialogue, sizes.support, seed))
    seen = {json.dumps(r["messages"]) for r in support}
    files = {
        "support": support,
        "support_test": list(_records(support_dialogue, sizes.support_test, seed + 1, seen)),
        "general": list(_records(general_record, sizes.general, seed + 2)),
        "study": list(_records(study_record, sizes.study, seed + 3)),
    }
    paths = {name: out_dir / f"{name}.jsonl" for name in files}
    for name, records in files.items():
        _write_jsonl(paths[name], records)
    rng = random.Random(seed + 4)
    paths["corpus"] = out_dir / "corpus.txt"
    paths["corpus"].write_text("\n\n".join(corpus_paragraph(rng) for _ in range(sizes.corpus)) + "\n",
                               encoding="utf-8")
    return {**paths, **generate_support(support_dir, seed, sizes)}


def generate_support(out_dir: Path = SUPPORT_DATA_DIR, seed: int = 0, sizes: DataSizes = DataSizes()) -> dict[str, Path]:
    """Write data/support/{train,test}.jsonl, the real-model support set."""
    out_dir.mkdir(parents=True, exist_ok=True)
    personas = persona_prompts()
    train = list(_records(lambda rng: support_train_dialogue(rng, personas), sizes.support_train, seed + 10))
    test = list(_records(lambda rng: support_test_dialogue(rng, personas), sizes.support_heldout, seed + 11))
    paths = {"support_train": out_dir / "train.jsonl", "support_heldout": out_dir / "test.jsonl"}
    _write_jsonl(paths["support_train"], train)
    _write_jsonl(paths["support_heldout"], test)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo.datagen", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_DIR, help="output folder (default data/demo)")
    parser.add_argument("--support-out", type=Path, default=SUPPORT_DATA_DIR, help="real-model support set folder")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = parser.parse_args(argv)
    for name, path in generate(args.out, args.seed, support_dir=args.support_out).items():
        print(f"{name:>13}: {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The tokenizer/template family registry: lookups and refusals by name, and for every family its training
template renders byte-for-byte like the model's template while its assistant mask covers exactly the
assistant spans and their end-of-turn token. SmolLM2's side uses the tokenizer rebuilt from the real GGUF."""

from __future__ import annotations

import json

import pytest

from tests.test_training_template import CONVERSATIONS
from training.families import (
    FAMILIES, Family, FamilyError, by_gguf_pre, by_name, by_pre_tokenizer, make_registry, of_tokenizer,
)
from training.sft.template import TemplateMismatch, assistant_mask, check_renders_like, render, training_chat_template


@pytest.fixture(scope="module")
def tokenizers(smollm2_gguf):
    """One tokenizer per family: a small trained Llama 3 one, and SmolLM2's rebuilt from its GGUF."""
    from training.export.gguf_import import read_fields, tokenizer_from_gguf
    from training.tokenizer import build_llama3_tokenizer

    texts = [m["content"] for conv in CONVERSATIONS for m in conv] * 5
    return {"llama3-bpe": build_llama3_tokenizer(texts, vocab_size=800),
            "smollm": tokenizer_from_gguf(read_fields(smollm2_gguf))}


def test_every_family_is_covered_here():
    assert set(FAMILIES) == {"llama3-bpe", "smollm"}  # a new family needs its tokenizer in `tokenizers` above


def test_lookups_and_refusals_by_name():
    assert by_gguf_pre("smollm").name == "smollm" and by_gguf_pre("llama-bpe").name == "llama3-bpe"
    with pytest.raises(FamilyError, match=r"GGUF pre-tokenizer 'qwen2' is not supported: .*llama-bpe.*smollm"):
        by_gguf_pre("qwen2")
    with pytest.raises(FamilyError, match="unknown tokenizer family 'chatml'"):
        by_name("chatml")
    gpt2 = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    with pytest.raises(FamilyError, match="pre-tokenizer 'ByteLevel' is not supported"):
        by_pre_tokenizer(gpt2)  # plain GPT-2 (no digit split) is neither family


def test_duplicates_are_refused():
    smollm = FAMILIES["smollm"]
    with pytest.raises(FamilyError, match="'copy' duplicates 'smollm'"):
        make_registry(smollm, Family(**{**smollm.__dict__, "name": "copy"}))
    with pytest.raises(FamilyError, match="duplicates 'smollm'"):
        make_registry(smollm, Family(**{**smollm.__dict__, "gguf_pre": "other"}))


def test_family_signatures_differ_and_match_real_smollm2_tokenizer_json():
    assert len({f.signature() for f in FAMILIES.values()}) == len(FAMILIES)
    # pre_tokenizer exactly as in HuggingFaceTB/SmolLM2-135M-Instruct's tokenizer.json
    real = json.loads('{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, '
                      '{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}')
    assert by_pre_tokenizer(real).name == "smollm"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tokenizer_knows_its_family(tokenizers, family):
    assert of_tokenizer(tokenizers[family]).name == family


def test_smollm_chat_template_is_the_gguf_one(tokenizers):
    assert tokenizers["smollm"].chat_template == FAMILIES["smollm"].chat_template_text()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_training_template_renders_identically(tokenizers, family, conversation, add_generation_prompt):
    tok, fam = tokenizers[family], FAMILIES[family]
    model_text = render(tok, conversation, fam.chat_template_text(), add_generation_prompt=add_generation_prompt)
    training_text = render(tok, conversation, training_chat_template(fam), add_generation_prompt=add_generation_prompt)
    assert training_text == model_text


def test_a_template_the_family_does_not_reproduce_is_refused(tokenizers):
    other = FAMILIES["smollm"].chat_template_text().replace("named SmolLM", "named Iris")
    with pytest.raises(TemplateMismatch, match="smollm training template .* does not render like"):
        check_renders_like(tokenizers["smollm"], other, FAMILIES["smollm"])
    check_renders_like(tokenizers["smollm"], FAMILIES["smollm"].chat_template_text(), FAMILIES["smollm"])


def chatml_assistant_positions(tokenizer, text: str) -> set[int]:
    """Tokens overlapping any character from after '<|im_start|>assistant\\n' to the end of the next <|im_end|>,
    found from the rendered text alone (a token may straddle the header's newline: ' 4' starts with 'ĊĠ')."""
    header, end = "<|im_start|>assistant\n", "<|im_end|>"
    spans, at = [], text.find(header)
    while at >= 0:
        first = at + len(header)
        spans.append((first, text.index(end, first) + len(end)))
        at = text.find(header, first)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return {i for i, (a, b) in enumerate(offsets) if any(a < stop and b > start for start, stop in spans)}


@pytest.mark.parametrize("conversation", CONVERSATIONS[:3])
def test_chatml_mask_is_exactly_the_assistant_spans_with_im_end(tokenizers, conversation):
    tok = tokenizers["smollm"]
    ids, mask = assistant_mask(tok, conversation)
    assert ids == tok.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    masked = {i for i, m in enumerate(mask) if m}
    assert masked == chatml_assistant_positions(tok, render(tok, conversation))
    answers = [m["content"] for m in conversation if m["role"] == "assistant"]
    segments = tok.decode([ids[i] for i in sorted(masked)]).split("<|im_end|>")
    # an answer starting with a space shares one token ('ĊĠ') with the header's newline, so that token is trained
    assert [seg.removeprefix("\n") if ans.startswith(" ") else seg for seg, ans in zip(segments, answers)] == answers
    assert segments[len(answers):] == [""]
    assert sum(ids[i] == tok.convert_tokens_to_ids("<|im_end|>") for i in masked) == len(answers)

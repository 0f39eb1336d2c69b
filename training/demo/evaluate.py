"""Held-out evaluation of the demo models: assistant-token loss on support dialogues and a sample answer.

Works on any Hugging Face causal LM plus its tokenizer; it neither trains nor exports.
"""

from __future__ import annotations

import torch

from training.demo import data


@torch.no_grad()
def assistant_loss(model, tokenizer, chats: list[list[dict]], batch_size: int = 16) -> float:
    """Mean cross-entropy per assistant token over `chats` (each scored whole, never packed)."""
    examples = [data.chat_example(tokenizer, m, assistant_only=True) for m in chats]
    total, count = 0.0, 0
    model.eval()
    for i in range(0, len(examples), batch_size):
        blocks = [_pad(e, max(len(x.input_ids) for x in examples[i:i + batch_size]), tokenizer.pad_token_id)
                  for e in examples[i:i + batch_size]]
        input_ids = torch.tensor([b.input_ids for b in blocks])
        labels = torch.tensor([b.labels for b in blocks])
        logits = model(input_ids=input_ids).logits[:, :-1]
        targets = labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=data.IGNORE,
                                                   reduction="sum")
        total += losses.item()
        count += int((targets != data.IGNORE).sum())
    return total / count


def _pad(example: data.Example, length: int, pad_id: int) -> data.Example:
    extra = length - len(example.input_ids)
    return data.Example(example.input_ids + [pad_id] * extra, example.labels + [data.IGNORE] * extra)


def first_reply_match(model, tokenizer, chats: list[list[dict]], words: int = 4) -> float:
    """Share of chats whose greedy first reply starts with the reference reply's first `words` words.

    Loss rewards fluent support wording; this checks the reply fits the question (the right case).
    """
    hits = 0
    for messages in chats:
        turn = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
        reply = generate(model, tokenizer, messages[:turn], max_new_tokens=16)
        hits += reply.split()[:words] == messages[turn]["content"].split()[:words]
    return hits / len(chats)


def sample_answer(model, tokenizer, question: str, max_new_tokens: int = 60) -> str:
    """Greedy answer to one user message, rendered through the chat template."""
    return generate(model, tokenizer, [{"role": "user", "content": question}], max_new_tokens)


@torch.no_grad()
def generate(model, tokenizer, messages: list[dict], max_new_tokens: int) -> str:
    """Greedy continuation of `messages` as the assistant's next reply."""
    prompt = data.render(tokenizer, messages, add_generation_prompt=True)
    input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    output = model.generate(input_ids, max_new_tokens=max_new_tokens, do_sample=False,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True).strip()

"""Stage 5, `python -m training eval MODEL_ID`: base vs fine-tune, side by side.

- Held-out loss and perplexity on prepare/test.jsonl (assistant tokens only, as trained), for the
  base checkpoint and the merged fine-tune.
- A fixed prompt set for the recipe's domain (eval_prompts.yaml) answered greedily by both GGUFs
  from the export stage through llama.cpp, i.e. exactly what the app serves.
- Optional LLM-as-judge (judge.py) scoring both answers in both orders.
Writes eval/report.json and eval/report.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import yaml

from training.stages.run import Run, StageError, add_run_arguments, file_sha256, open_run, run_stage, stage_errors, write_json_atomic

PROMPTS_PATH = Path(__file__).resolve().parent / "eval_prompts.yaml"
DOMAINS = {"sharegpt": "general", "chat_jsonl": "general", "text": "general", "bitext": "support", "exam_jsonl": "study"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--max-new-tokens", type=int, default=256, help="answer length limit for the prompt set")
    parser.add_argument("--heldout-rows", type=int, default=200, help="test examples used for held-out loss")
    parser.add_argument("--prompts", default=str(PROMPTS_PATH), help="YAML of domain -> prompts")
    parser.add_argument("--domain", default=None, help="prompt-set domain (default: from the first dataset's format)")
    parser.add_argument("--judge", default=None,
                        help="optional judge: 'endpoint' ($IRIS_JUDGE_URL/$IRIS_JUDGE_KEY/$IRIS_JUDGE_MODEL), "
                             "a registered model id with a local GGUF, or a .gguf path")


def domain_prompts(run: Run, prompts_file: Path, domain: str | None = None) -> tuple[str, list[str]]:
    """The domain (given, else from the recipe's first dataset format) and that domain's prompts."""
    domain = domain or DOMAINS[run.recipe.datasets[0].format]
    prompts = yaml.safe_load(prompts_file.read_text(encoding="utf-8"))
    if not isinstance(prompts, dict) or not prompts.get(domain):
        raise StageError(f"{prompts_file}: needs a non-empty list of prompts under {domain!r}")
    return domain, list(prompts[domain])


def evaluate(run: Run, max_new_tokens: int = 256, heldout_rows: int = 200, prompts_file: Path = PROMPTS_PATH,
             judge: str | None = None, domain: str | None = None) -> dict[str, Any]:
    """Run the stage (or skip it when up to date); returns its record."""
    inputs = {"export": run.upstream("export")["fingerprint"], "max_new_tokens": max_new_tokens,
              "heldout_rows": heldout_rows, "prompts": file_sha256(Path(prompts_file)), "judge": judge, "domain": domain}
    return run_stage(run, "eval", inputs,
                     lambda out: _evaluate(run, out, max_new_tokens, heldout_rows, Path(prompts_file), judge, domain))


# ---------------------------------------------------------------- held-out loss


def heldout_loss(model_dir: str, base_checkpoint: str, rows: list[dict], label: str = "") -> dict[str, float]:
    """Mean NLL per trained token (assistant tokens incl. their end-of-turn token for chats) and its perplexity."""
    import torch
    from transformers import AutoModelForCausalLM

    from training.sft.template import assistant_mask
    from training.sft.trainer import load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(base_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.to(device).eval()
    from tqdm.auto import tqdm

    total, count = 0.0, 0
    for row in tqdm(rows, desc=f"held-out loss {label}", leave=False):
        if "messages" in row:
            ids, mask = assistant_mask(tokenizer, row["messages"])
        else:
            ids = tokenizer(row["text"])["input_ids"] + [tokenizer.eos_token_id]
            mask = [1] * len(ids)
        labels = torch.tensor([[i if m else -100 for i, m in zip(ids, mask)]], device=device)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=device)).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum")
        total, count = total + loss.item(), count + int((labels[0, 1:] != -100).sum())
    mean_nll = total / max(count, 1)
    return {"loss": round(mean_nll, 4), "perplexity": round(math.exp(min(mean_nll, 50)), 3), "tokens": count}


# ---------------------------------------------------------------- prompt set


def answer_prompts(gguf: str, prompts: list[str], max_new_tokens: int, n_ctx: int = 2048) -> list[dict[str, Any]]:
    """Greedy answers from a GGUF via llama.cpp (the path the app serves), with timings."""
    from llama_cpp import Llama

    from tqdm.auto import tqdm

    llm = Llama(model_path=gguf, n_ctx=n_ctx, seed=0, verbose=False)
    answers = []
    for prompt in tqdm(prompts, desc=f"answering with {Path(gguf).name}", leave=False):
        started = time.perf_counter()
        out = llm.create_chat_completion([{"role": "user", "content": prompt}], temperature=0.0, max_tokens=max_new_tokens)
        answers.append({"text": out["choices"][0]["message"]["content"] or "", "tokens": out["usage"]["completion_tokens"],
                        "seconds": round(time.perf_counter() - started, 3)})
    return answers


def _make_judge(run: Run, judge: str):
    from training.stages.judge import endpoint_judge, gguf_judge

    if judge == "endpoint":
        return endpoint_judge()
    if judge.endswith(".gguf"):
        return gguf_judge(judge)
    entry = run.registry.get(judge)
    if entry.source.local is None:
        raise StageError(f"judge {judge!r} has no local GGUF; use a local entry, a .gguf path or 'endpoint'")
    return gguf_judge(str(run.registry.local_path(entry)))


def _evaluate(run: Run, out: Path, max_new_tokens: int, heldout_rows: int, prompts_file: Path,
              judge: str | None, domain: str | None) -> dict[str, Any]:
    from training.stages.prepare import read_jsonl

    exported = run.upstream("export")["metrics"]
    test_rows = read_jsonl(run.dir / "prepare" / "test.jsonl")[:heldout_rows]
    base = run.base_checkpoint()
    heldout = {"base": heldout_loss(base, base, test_rows, "base"),
               "finetune": heldout_loss(str(run.dir / "merge" / "model"), base, test_rows, "fine-tune")}
    domain, prompts = domain_prompts(run, prompts_file, domain)
    n_ctx = min(2048, run.entry.context_length)
    base_answers = answer_prompts(exported["base_gguf"], prompts, max_new_tokens, n_ctx)
    tuned_answers = answer_prompts(exported["gguf"], prompts, max_new_tokens, n_ctx)
    items = [{"prompt": p, "base": b, "finetune": t} for p, b, t in zip(prompts, base_answers, tuned_answers)]
    if judge:
        from training.stages.judge import judge_pair

        ask = _make_judge(run, judge)
        for item in items:
            item["judge"] = judge_pair(ask, item["prompt"], item["base"]["text"], item["finetune"]["text"])
    report = {"model_id": run.entry.id, "base": run.recipe.base_checkpoint, "domain": domain,
              "heldout": heldout, "heldout_examples": len(test_rows), "max_new_tokens": max_new_tokens,
              "judge": judge, "ggufs": {"base": exported["base_gguf"], "finetune": exported["gguf"]}, "items": items}
    write_json_atomic(out / "report.json", report)
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return {"heldout": heldout, "domain": domain, "prompts": len(items), "judge": judge,
            **({"judge_means": _judge_means(items)} if judge else {})}


def _judge_means(items: list[dict[str, Any]]) -> dict[str, float | None]:
    means = {}
    for who in ("base", "finetune"):
        scores = [sum(i["judge"][who].values()) / 3 for i in items if i.get("judge", {}).get(who)]
        means[who] = round(sum(scores) / len(scores), 3) if scores else None
    return means


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def render_markdown(report: dict[str, Any]) -> str:
    """The side-by-side report: held-out numbers, then one row per prompt."""
    h = report["heldout"]
    lines = [
        f"# Evaluation: {report['model_id']} vs {report['base']}", "",
        f"Domain: {report['domain']}; greedy decoding, at most {report['max_new_tokens']} new tokens; "
        f"held-out examples: {report['heldout_examples']}.", "",
        "| | held-out loss | perplexity |", "| --- | ---: | ---: |",
        f"| base | {h['base']['loss']} | {h['base']['perplexity']} |",
        f"| fine-tune | {h['finetune']['loss']} | {h['finetune']['perplexity']} |", "",
        "| prompt | base | fine-tune |" + (" judge (base / fine-tune) |" if report["judge"] else ""),
        "| --- | --- | --- |" + (" --- |" if report["judge"] else ""),
    ]
    for item in report["items"]:
        row = f"| {_cell(item['prompt'])} | {_cell(item['base']['text'])} | {_cell(item['finetune']['text'])} |"
        if report["judge"]:
            j = item["judge"]
            fmt = lambda s: "n/a" if not s else f"{sum(s.values()) / 3:.2f}"  # noqa: E731
            row += f" {fmt(j['base'])} / {fmt(j['finetune'])} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    with stage_errors("eval"):
        evaluate(open_run(args), args.max_new_tokens, args.heldout_rows, Path(args.prompts), args.judge, args.domain)
    return 0

"""Evaluation answers come from the app's own serving path: the same prompt tokens and the same greedy
answer as a visitor's request to the registered model, and never a doubled BOS."""

from serving.engine import ChatRequest, Engine
from training.stages.answers import answer_all, eval_engine, greedy

MESSAGES = [{"role": "system", "content": "You are a helpful support agent."},
            {"role": "user", "content": "Where is my order BL-12345?"}]


def test_eval_and_app_send_the_same_prompt_and_get_the_same_answer(registry, demo_paths, tmp_path):
    app = Engine(registry)
    evaluation = eval_engine({"finetune": str(demo_paths["demo-support"])}, registry.get("demo-support").context_length,
                             tmp_path)
    try:
        app_text, app_stats = app.complete(ChatRequest("demo-support", MESSAGES, greedy(24)))
        eval_text, eval_stats = evaluation.complete(ChatRequest("finetune", MESSAGES, greedy(24)))
        with app.pool.use("demo-support", lambda: 0, lambda: None) as app_model, \
                evaluation.pool.use("finetune", lambda: 0, lambda: None) as eval_model:
            app_ids, eval_ids = app_model.prompt_tokens(MESSAGES), eval_model.prompt_tokens(MESSAGES)
            bos = app_model.model.token_bos()
    finally:
        app.close()
        evaluation.close()
    assert app_ids == eval_ids and app_stats.n_prompt_tokens == eval_stats.n_prompt_tokens == len(app_ids)
    assert app_ids.count(bos) == 1 and app_ids[0] == bos
    assert eval_text == app_text and eval_text.strip()


def test_answer_all_records_text_tokens_and_finish(demo_paths, tmp_path):
    engine = eval_engine({"base": str(demo_paths["demo-base"])}, 512, tmp_path)
    try:
        answers = answer_all(engine, "base", [[{"role": "user", "content": "Hello"}]], 8)
    finally:
        engine.close()
    assert answers[0]["tokens"] <= 8 and answers[0]["finish"] in ("stop", "length") and answers[0]["seconds"] > 0


def test_batched_heldout_loss_equals_row_by_row(registry):
    import json

    from training.stages.evaluate import heldout_loss

    base = str(registry.root / "models" / "demo" / "demo-base-hf")
    rows = [json.loads(line) for line in (registry.root / "data" / "demo" / "support_test.jsonl").open()][:10]
    one, batched = heldout_loss(base, base, rows, batch_size=1), heldout_loss(base, base, rows, batch_size=8)
    assert one["tokens"] == batched["tokens"] > 0
    assert abs(one["loss"] - batched["loss"]) < 1e-3

"""How tokens are produced for the engine: `llamacpp` (a GGUF in this process, decoded by the continuous-batching
scheduler in `batched`) and `openai_remote` (any OpenAI-compatible server). The engine picks one per registry
entry; nothing here imports Gradio."""

"""The context layer: what a support answer may rest on, gathered per request as plain text.

Knowledge (a folder of Markdown help-center articles, split into passages and ranked with BM25) and
order lookup (an interface, with a read-only SQLite implementation) feed `ContextLayer.for_request`,
which returns the text for the system turn and the sources to show under the answer.

Boundary: pure of Gradio and of llama.cpp. Token counting is a callable passed in, so the serving
engine (with the model's tokenizer) and the trainer's data builder call the same retrieval.
Modules: `articles` (load + split), `retrieval` (FTS5 index), `orders` (lookup), `render` (text +
sources), `layer` (one call per request).
"""

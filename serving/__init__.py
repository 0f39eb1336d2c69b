"""Iris serving layer: registry, model resolution and loading, generation, chat state.

Nothing in this package imports Gradio; the pages in `pages/` call it, and so can
a CLI or another server. `training/` reads only `serving.registry` and the file helpers of
`serving.files` (and resolves base GGUFs through `serving.resolve`), and `serving.context` for
retrieved passages and demo orders, so training data carries the same context the app sends.
"""

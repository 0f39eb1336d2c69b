"""Iris training toolkit: data prep, LoRA/QLoRA fine-tuning, merge, GGUF export,
evaluation, model cards and Hub publishing, driven by recipes in model_registry.yaml.

Runs from the command line (`python -m training COMMAND`); the app never imports it.
Heavy dependencies (torch, transformers, gguf, ...) are imported inside the commands.
"""

"""Offline demo models: bundled data generator, tiny Llama pretraining, LoRA support fine-tune, build CLI.

`python -m training build-demo` (see `build.py`) turns data/demo/ into models/demo/
(demo-base and demo-support, HF folders and Q4_K_M GGUFs). Never imported by the app.
"""

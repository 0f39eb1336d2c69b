"""Supervised fine-tuning: the training chat template and assistant masks (`template`), typed
recipe -> TRL/peft/bitsandbytes configs (`config`), and the trainer with its logging (`trainer`).

Only `training/stages/train.py` and benchmarks build trainers; nothing here reads the registry.
"""

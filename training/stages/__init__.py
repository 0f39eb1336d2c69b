"""The rebuild stages: prepare -> train -> merge -> export -> eval -> publish, each a command
(`python -m training STAGE MODEL_ID`) that reads the previous stage's folder in the run folder.
`run.py` holds the shared run folder, content-hash skipping and run.json bookkeeping.
"""

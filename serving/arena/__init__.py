"""The Compare page's logic without any UI: model pairing, side-by-side runs, votes and ratings.

`pairing` picks which two models meet, `compare` runs one prompt through both via the
Engine and checks each answer came from the model shown, `votes` persists blind-arena
votes in SQLite, and `ratings` turns votes into a leaderboard. Nothing here imports
Gradio; `pages/compare.py` is the only UI on top of it.
"""

"""Gradio pages of the Iris app: one module per page, each exposing `build(engine)`.

Pages build UI and wire events only; everything else goes through `serving/`.
"""

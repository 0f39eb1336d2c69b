"""Compare page (placeholder until its issue lands): builds UI only, calls serving/."""

import gradio as gr


def build(engine) -> None:
    """Create the page's components inside the current Blocks/route context."""
    gr.Markdown("## Compare\nThis page is being built.")

"""Study tools: quiz, answer feedback, cheat sheet, planner, flashcards and mixed drill, without Gradio.

`inputs` checks what a visitor asked for, `prompts` and `schemas` say what the model is asked for,
`tools` calls the engine and parses the answer, `planner`, `scoring` and `export` are pure code.
"""

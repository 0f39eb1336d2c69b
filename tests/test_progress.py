"""Progress bars write whole lines, not carriage-return redraws, when the output is not a terminal."""

import io

from serving import progress
from serving.progress import ProgressBar


def test_a_log_gets_a_few_whole_lines_not_redraws(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 3600.0)  # no redraw in between: first and last line only
    log = io.StringIO()
    for _ in ProgressBar(range(1000), desc="rows", file=log):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2
    assert lines[0].startswith("rows:   0%") and lines[-1].startswith("rows: 100%")


def test_a_cleared_bar_leaves_no_blank_lines():
    log = io.StringIO()
    for _ in ProgressBar(range(3), desc="x", file=log, leave=False):
        pass
    assert all(line.strip() for line in log.getvalue().splitlines())


def test_sft_config_disables_trainer_bars_in_a_log_unless_the_recipe_decides(monkeypatch, tmp_path):
    from training.sft import config

    monkeypatch.setattr(progress, "interactive", lambda stream=None: False)
    assert config.sft_config({}, str(tmp_path)).disable_tqdm is True
    assert config.sft_config({"disable_tqdm": False}, str(tmp_path)).disable_tqdm is False
    monkeypatch.setattr(progress, "interactive", lambda stream=None: True)
    assert config.sft_config({}, str(tmp_path)).disable_tqdm is not True

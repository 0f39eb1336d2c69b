"""Files the app writes at run time are ignored by git, so they are never committed by accident."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", ["votes.db", "votes.db-wal", "votes.db-shm", "models"])
def test_runtime_files_are_ignored(path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode == 0, path

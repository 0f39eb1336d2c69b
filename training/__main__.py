"""`python -m training COMMAND ...`: thin entry point; see training/cli.py."""

import sys

from training.cli import main

sys.exit(main(sys.argv[1:]))

"""``python -m core ...``: the command-line interface (see core/cli.py and docs/research.md)."""
import sys

from core.cli import main

sys.exit(main())

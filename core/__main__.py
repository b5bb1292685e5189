"""``python -m core ...``: the command-line interface (see core/cli.py and docs/research.md)."""
import sys

from core.cli import main

if __name__ == "__main__":  # worker processes may import this module: never run it then
    sys.exit(main())

"""``python -m benchmarks`` (from the repository root) or ``python -m theon.benchmarks``:
print the benchmark table. ``--quick`` for a fast run, ``--case NAME`` to pick cases, ``--list``."""
import sys

from . import cli

if __name__ == "__main__":
    sys.exit(cli())

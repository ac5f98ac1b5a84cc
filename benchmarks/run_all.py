"""Run every benchmark in this folder and rewrite the Markdown tables the docs include.

``python benchmarks/run_all.py`` runs `core` (import cost, expression building, classic
`Trainer` overhead), `lightning_overhead` (`LitTrainer` overhead and memory) and then
`sweep_vectorised` (a sweep trained as one population against one run at a time), each in its
own interpreter so that one's imports do not bias the other's timings. Exit status 1 if any goal
is missed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("core.py", "lightning_overhead.py", "sweep_vectorised.py")


def main() -> int:
    """Run each benchmark script; return 1 if any of them reports a missed goal."""
    status = 0
    for script in SCRIPTS:
        status |= subprocess.run([sys.executable, str(HERE / script)], cwd=HERE).returncode != 0
    return int(status)


if __name__ == "__main__":
    sys.exit(main())

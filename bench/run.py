"""Run every benchmark in bench/ (b*.py) and print their JSON lines.

    python bench/run.py            # all
    python bench/run.py b1 b6      # some, by prefix
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
wanted = sys.argv[1:]
scripts = sorted(p for p in HERE.glob("b*_*.py") if not wanted or any(p.name.startswith(w) for w in wanted))
status = 0
for script in scripts:
    print(f"# {script.name}", flush=True)
    status |= subprocess.run([sys.executable, str(script)]).returncode
sys.exit(status)

"""Run every benchmark in bench/ (b*.py) and print their JSON lines.

    python bench/run.py            # all
    python bench/run.py b1 b6      # some, by prefix
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
wanted = sys.argv[1:]
# by number (b1 is b1_ingest and b1_peers, not b10_encryption) or by full name
scripts = sorted(p for p in HERE.glob("b*_*.py") if not wanted or any(w in (p.name.split("_")[0], p.stem) for w in wanted))
status = 0
for script in scripts:
    print(f"# {script.name}", flush=True)
    status |= subprocess.run([sys.executable, str(script)]).returncode
sys.exit(status)

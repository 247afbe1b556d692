"""The contract suite's own tests: `contract_toy_crm` (the toy source and its broken twins)
is imported by module name from this folder."""

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

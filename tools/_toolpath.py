"""Imported first by every tool: removes ``tools/`` from ``sys.path``.

Python puts a script's folder on ``sys.path``, so ``tools/profile.py`` would shadow the standard library's
``profile`` module (which ``cProfile``, and through it ``torch._dynamo``, imports).
"""

import sys
from pathlib import Path

_TOOLS = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _TOOLS]

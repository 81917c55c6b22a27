"""The Hydra configs, installed as ``mobivision.configs`` (see ARCHITECTURE.md, "Packaging").

``CONFIG_DIR`` is the folder every entry point composes from, in a checkout and in an installed wheel alike.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent

"""The ``mobivision`` console script: ``mobivision <command> [arguments]``, one command per tool in ``tools/``.

``train``, ``eval`` and ``check`` take Hydra overrides exactly like ``tools/train.py`` (``experiment=demo
trainer.max_epochs=1``, ``-m`` sweeps, ``--cfg job``); the others take the options of their tool (``--help``).
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, function, what it does). Hydra commands read sys.argv; the others take argv.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("mobivision.commands.train", "train_main", "train a task from configs (Hydra overrides)"),
    "eval": ("mobivision.commands.train", "eval_main", "evaluate a checkpoint (ckpt_path=... [split=val])"),
    "check": ("mobivision.commands.check", "check_main", "check a training config in seconds, without training"),
    "predict": ("mobivision.commands.predict", "main", "predict with a checkpoint on an image or a folder"),
    "serve": ("mobivision.commands.serve", "main", "a local web page and JSON endpoint predicting with a model"),
    "export": ("mobivision.commands.export", "main", "export a checkpoint to ONNX / INT8 / TorchScript / mobile"),
    "collect": ("mobivision.commands.collect", "main", "tabulate a sweep: cost, metric and the trade-off chart"),
    "profile": ("mobivision.commands.profile", "main", "multiply-adds, parameters and the paper's cost tables"),
    "benchmark": ("mobivision.commands.benchmark", "main", "CPU speed against timm / torchvision / ONNX Runtime"),
    "convert": ("mobivision.commands.convert", "main", "convert TF-Slim / Keras / timm / torchvision weights"),
    "geo-cells": ("mobivision.commands.geo_cells", "main", "build adaptive S2 cell partitionings"),
    "measure": ("mobivision.commands.measure", "main", "re-run the README's Measured rows and print its table"),
}
HYDRA_COMMANDS = ("train", "eval", "check")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {about}" for name, (*_, about) in COMMANDS.items()]
    return "usage: mobivision <command> [arguments]\n\ncommands:\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the command's entry point; returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"error: unknown command {name!r}{hint}\n\n{usage()}", file=sys.stderr, end="")
        return 2
    module, function, _ = COMMANDS[name]
    entry = getattr(importlib.import_module(module), function)
    sys.argv = [f"mobivision {name}", *rest]  # usage lines name the command
    if name in HYDRA_COMMANDS:
        entry()
        return 0
    return entry(rest) or 0


if __name__ == "__main__":
    sys.exit(main())

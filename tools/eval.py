"""Evaluate a checkpoint: ``python tools/eval.py ckpt_path=runs/demo/<time>/checkpoints/best.ckpt``."""

from mobivision.commands.train import eval_main

if __name__ == "__main__":
    eval_main()

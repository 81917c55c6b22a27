"""Train a task from configs: ``python tools/train.py experiment=demo trainer.max_epochs=5``."""

from mobivision.commands.train import train_main

if __name__ == "__main__":
    train_main()

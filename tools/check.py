"""Check a training config before training: ``python tools/check.py experiment=demo_classification [overrides]``.

Takes exactly the arguments of ``tools/train.py`` and composes the same config, then checks the data paths,
weight paths and output folder, loads one training batch and runs one forward pass (``mobivision/commands/check.py``).
``--scan-images`` (every split) or ``--scan-images=train`` also opens every image file of the split(s) with a fast
header check (Pillow ``verify``) and names the unreadable ones. Prints ``✓`` lines; the first problem ends in one
``error: <key>: <problem>`` line on stderr and exit code 2.

Nothing is written (Hydra's run folder goes to a temporary folder, removed at exit), except what training
writes on first use anyway: a synthetic dataset and the geo task's cell partitionings.
"""

from mobivision.commands.check import check_main

if __name__ == "__main__":
    check_main()

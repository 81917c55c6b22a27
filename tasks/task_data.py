"""A task's own data read back from its checkpoint (``TaskData``: evaluation batches, calibration images) and the
task's metrics of any runner on them (``evaluate_runner``): what the export's INT8 check and ``benchmark latency``
score an exported file by, as the task's test would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from mobivision.errors import ConfigError
from mobivision.evaluation.evaluator import Evaluator
from mobivision.tasks.base import TaskModule
from mobivision.tasks.multitask_data import source_modules
from mobivision.tasks.runner import build_datamodule


class TaskData:
    """The task's own data (from the checkpoint's run configuration): validation images for parity and
    metrics, training images through the evaluation transform for calibration.

    A multi-task model's data has several sources (``datamodule.sources``): its batches come source after source,
    each tagged ``batch["source"]``, and ``eval_dataset`` is the list of the sources' datasets.
    """

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule
        self.sources = source_modules(datamodule)
        self.eval_split = "val" if all("val" in m.datasets for m in self.sources.values()) else "test"
        if not all(self.eval_split in m.datasets for m in self.sources.values()):
            raise ConfigError("the task's data has neither a val nor a test split to evaluate on")

    @classmethod
    def from_task(cls, task: TaskModule) -> TaskData:
        """Raises ``MobivisionError`` when the checkpoint has no run configuration or the data cannot be read."""

        run_config = task.hparams.get("run_config") if hasattr(task, "hparams") else None
        if not run_config or not run_config.get("data"):
            raise ConfigError("the checkpoint records no data configuration (run_config.data)")
        data_cfg = copy.deepcopy(run_config["data"])
        for source in data_cfg.get("sources", {}).values():
            # One graph, one input size: every source's images are scored at the exported resolution.
            source["resolution"] = task.input_size[0]
        for config in [data_cfg, *data_cfg.get("sources", {}).values()]:
            config["num_workers"] = 0
            config.pop("persistent_workers", None)
        datamodule = build_datamodule(data_cfg, task.backbone_cfg["name"])
        return cls(datamodule)

    @property
    def eval_dataset(self) -> Any:
        datasets = [module.datasets[self.eval_split] for module in self.sources.values()]
        return datasets[0] if "" in self.sources else datasets

    @property
    def eval_images(self) -> int:
        """The number of evaluation images over every source."""
        return sum(len(module.datasets[self.eval_split]) for module in self.sources.values())

    def _loader(self, module: Any, dataset: Any, batch_size: int) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=module.collate_fn)

    def _batches(self, split: str, count: int | None, batch_size: int) -> Iterator[dict[str, Any]]:
        """Batches of up to ``count`` images of each source's ``split`` (eval transform), tagged with their source."""
        for name, module in self.sources.items():
            dataset = module.datasets[split]
            if split != self.eval_split:  # training images through the evaluation transform
                dataset = copy.copy(dataset)
                dataset.transform = module.datasets[self.eval_split].transform
            if count is not None:
                order = range(min(count, len(dataset)))
                if split == "train":  # a seeded random choice
                    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count].tolist()
                dataset = Subset(dataset, order)
            for batch in self._loader(module, dataset, batch_size):
                yield batch if name == "" else {**batch, "source": name}

    def eval_batches(self, max_images: int | None = None, batch_size: int = 32) -> Iterator[dict[str, Any]]:
        yield from self._batches(self.eval_split, max_images, batch_size)

    def calibration(self, count: int, batch_size: int = 16) -> Iterator[np.ndarray]:
        """``count`` training images (a seeded random choice, split evenly over the sources) through the evaluation
        transform."""
        if not all("train" in m.datasets for m in self.sources.values()):  # checked now, not on the first image
            raise ConfigError("INT8 calibration needs the task's train split, which its data does not configure")
        per_source = max(1, count // len(self.sources))
        return (batch["image"].numpy() for batch in self._batches("train", per_source, batch_size))


def evaluate_runner(
    task: TaskModule, run: Callable[[np.ndarray], Sequence[np.ndarray]], data: TaskData, max_images: int | None = None
) -> tuple[dict[str, float], Evaluator]:
    """The task's metrics of a runner (numpy batch -> outputs of ``task.export_graphs()["model"]``) on the eval
    split, scored by the task's own evaluator (as its test would); returns the metrics and the evaluator."""
    evaluator = task.make_evaluator(data.eval_dataset, "test")
    for batch in data.eval_batches(max_images):
        outputs = [torch.from_numpy(np.asarray(o)) for o in run(batch["image"].numpy())]
        task.update_evaluator(evaluator, outputs, batch)
    return evaluator.compute(), evaluator

"""The classes a checkpoint of mobivision 0.1.0 names, in today's spelling.

0.1.0 kept every data module in one file (``mobivision.tasks.datamodule.<Class>``) and named two task modules after
their application rather than their kind (``face_attributes``, ``geolocation``); each has moved since. A
checkpoint records its task class (``mobivision.task``) and its run configuration (``run_config``, with the
``_target_`` of its task and data): ``registry.task_class`` reads the first through ``current_target``, and
``current_run_config`` renames the second where it is read (``load_task`` in ``tasks/runner.py``, the resume check
in ``tasks/resume.py``), so evaluation, export and resume rebuild or compare the run as it was.
"""

from __future__ import annotations

from typing import Any

# Only for files written by 0.1.0; a class added or moved since is never listed.
LEGACY_TARGETS = {
    "mobivision.tasks.datamodule.ClassificationDataModule": (
        "mobivision.tasks.classification_data.ClassificationDataModule"
    ),
    "mobivision.tasks.datamodule.AttributeDataModule": "mobivision.tasks.attributes_data.AttributeDataModule",
    "mobivision.tasks.datamodule.GeoDataModule": "mobivision.tasks.geo_data.GeoDataModule",
    "mobivision.tasks.datamodule.DetectionDataModule": "mobivision.tasks.detection_data.DetectionDataModule",
    "mobivision.tasks.datamodule.CelebAFacesDataModule": "mobivision.tasks.celeba_faces_data.CelebAFacesDataModule",
    "mobivision.tasks.face_attributes.AttributeTask": "mobivision.tasks.attributes.AttributeTask",
    "mobivision.tasks.geolocation.GeoTask": "mobivision.tasks.geo.GeoTask",
}


def current_target(path: str) -> str:
    """Today's ``module.Class`` of a class path 0.1.0 wrote (any other path as it is)."""
    return LEGACY_TARGETS.get(path, path)


def current_run_config(run_config: Any) -> Any:
    """``run_config`` with the ``_target_`` of ``task``, of ``data`` and of each of ``data.sources`` renamed by
    ``LEGACY_TARGETS`` (a copy; anything but a mapping is returned as it is)."""
    if not isinstance(run_config, dict):
        return run_config
    current = dict(run_config)
    for section in ("task", "data"):
        if isinstance(run_config.get(section), dict):
            current[section] = _current_targets(run_config[section])
    return current


def _current_targets(config: dict[str, Any]) -> dict[str, Any]:
    current = dict(config)
    if isinstance(config.get("_target_"), str):
        current["_target_"] = current_target(config["_target_"])
    if isinstance(config.get("sources"), dict):
        current["sources"] = {
            name: _current_targets(source) if isinstance(source, dict) else source
            for name, source in config["sources"].items()
        }
    return current

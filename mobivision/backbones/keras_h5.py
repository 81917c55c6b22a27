"""Read Keras 2 legacy HDF5 weight files (such as ``mobilenet_1_0_224_tf.h5``) into NumPy arrays.

Two layouts are read, both written by Keras 2 / tf_keras:

- weights only (``model.save_weights("x.h5")``, the layout of the released ``mobilenet_*_tf.h5`` files):
  the root has a ``layer_names`` attribute; each layer is a group with a ``weight_names`` attribute whose
  entries (``conv1/kernel:0``) are dataset paths inside that group;
- full model (``model.save("x.h5")``): the same structure under the ``model_weights`` group (optimizer
  state, in ``optimizer_weights``, is not read).

Keras splits an attribute too large for an HDF5 object header into ``name0``, ``name1``, ...; those are
joined back. Keras 3's ``*.weights.h5`` layout is different and is rejected with a clear message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np

from mobivision.errors import WeightFileError

_VARIABLE_INDEX = re.compile(r":\d+$")
# tf_keras >= 2.13 keeps weights that belong to the model itself rather than to a layer in this group.
_TOP_LEVEL_WEIGHTS = "top_level_model_weights"


def read_keras_h5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every weight of a Keras 2 HDF5 file.

    Args:
        path: A weights-only or full-model ``.h5`` file.

    Returns:
        ``"<layer>/<weight>"`` to array, in file order, e.g. ``conv1/kernel``, ``conv1_bn/moving_mean``
        (the ``:0`` suffix and a repeated layer-name prefix are removed from the stored weight names).

    Raises:
        WeightFileError: The file is missing, not HDF5, or not laid out as Keras 2 weights.
    """
    path = Path(path)
    if not path.exists():
        raise WeightFileError(f"{path}: no such file")
    if not path.is_file() or not h5py.is_hdf5(path):
        raise WeightFileError(f"{path}: not an HDF5 file; expected Keras 2 weights such as mobilenet_*_tf.h5")
    try:
        with h5py.File(path, "r") as file:
            return _read_weights(file, path)
    except WeightFileError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:  # h5py's errors on damaged files.
        raise WeightFileError(f"{path}: damaged or truncated HDF5 file: {exc}") from None


def _read_weights(file: h5py.File, path: Path) -> dict[str, np.ndarray]:
    """The weights of an open file, from the root or its ``model_weights`` group."""
    group = file
    if "layer_names" not in file.attrs and "model_weights" in file:
        group = file["model_weights"]
    layer_names = _string_list_attr(group, "layer_names")
    if layer_names is None:
        raise WeightFileError(
            f"{path}: no 'layer_names' attribute; expected Keras 2 HDF5 weights written by "
            "save_weights('*.h5') or save('*.h5') (Keras 3 '*.weights.h5' files are not supported)"
        )
    if _TOP_LEVEL_WEIGHTS in group:
        layer_names.append(_TOP_LEVEL_WEIGHTS)
    tensors: dict[str, np.ndarray] = {}
    for layer in layer_names:
        if layer not in group:
            raise WeightFileError(f"{path}: layer '{layer}' is listed in layer_names but has no group")
        layer_group = group[layer]
        for weight in _string_list_attr(layer_group, "weight_names") or []:
            dataset = layer_group.get(weight)
            if not isinstance(dataset, h5py.Dataset):
                raise WeightFileError(f"{path}: weight '{weight}' of layer '{layer}' has no dataset")
            key = _weight_key(layer, weight)
            if key in tensors:
                raise WeightFileError(f"{path}: two weights of layer '{layer}' are both named '{key}'")
            tensors[key] = np.asarray(dataset[()])
    return tensors


def _weight_key(layer: str, weight_name: str) -> str:
    """The key of a weight: ``_weight_key("conv1", "conv1/kernel:0") == "conv1/kernel"``."""
    name = _VARIABLE_INDEX.sub("", weight_name)
    return f"{layer}/{name.removeprefix(f'{layer}/')}"


def _string_list_attr(group: h5py.Group, name: str) -> list[str] | None:
    """A list-of-strings attribute, joined from Keras's ``name0, name1, ...`` chunks; None if absent."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
        if not chunks:
            return None
    return [_as_str(item) for chunk in chunks for item in np.atleast_1d(chunk)]


def _as_str(item: bytes | str) -> str:
    """An attribute item as text (old files store fixed-length bytes, newer ones variable-length str)."""
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)

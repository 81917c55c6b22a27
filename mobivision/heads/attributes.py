"""Multi-label attribute prediction (e.g. CelebA's 40 face attributes): loss, class balance and decisions.

Each attribute is an independent binary problem scored by one logit. Targets are float tensors ``[N, A]``
with 1.0 = present, 0.0 = absent and NaN = unknown; unknown entries take no part in the supervised term.

The MobileNets paper (Howard et al., 2017, Sec. 4.4, Table 12) trains small face-attribute MobileNets by
distillation (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015) from a large in-house
model. ``attribute_loss`` mixes the labelled binary cross-entropy with a distillation term against the
teacher's tempered probabilities; since the teacher scores every element, the distillation term also
covers elements whose label is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mobivision.errors import ConfigError, DataError


def positive_weight(positive_rate: torch.Tensor | Sequence[float], *, max_weight: float = 100.0) -> torch.Tensor:
    """BCE ``pos_weight`` per attribute: negatives / positives = ``(1 - p) / p``, clamped to
    ``[1 / max_weight, max_weight]`` so that a rate of 0 or 1 gives a finite, non-zero weight.

    Args:
        positive_rate: Share of positives among the known labels of each attribute, in ``[0, 1]``.
        max_weight: Largest weight (and reciprocal of the smallest); at least 1.
    """
    rate = torch.as_tensor(positive_rate)
    if not rate.is_floating_point():
        rate = rate.float()
    if not (math.isfinite(max_weight) and max_weight >= 1.0):
        raise ConfigError(f"max_weight must be a finite number >= 1, got {max_weight}")
    invalid = torch.isnan(rate) | (rate < 0) | (rate > 1)
    if invalid.any():
        raise ConfigError(
            f"positive rates must lie in [0, 1]; got {rate[invalid].tolist()} at index "
            f"{invalid.nonzero().flatten().tolist()}"
        )
    # (1 - 0) / 0 = inf and (1 - 1) / 1 = 0 are both brought into range by the clamp.
    return ((1 - rate) / rate).clamp(min=1.0 / max_weight, max=max_weight)


def attribute_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    pos_weight: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    teacher_weight: float = 0.0,
    temperature: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Masked binary cross-entropy, optionally mixed with distillation from a teacher.

    Per element, with student logit ``s``, label ``y``, teacher logit ``t``, ``w = teacher_weight`` and
    ``T = temperature``:

    - labelled (``y`` not NaN): ``(1 - w) * BCE(s, y; pos_weight) + w * T^2 * BCE(s / T, sigmoid(t / T))``
      (the second part only when a teacher is given);
    - unlabelled (``y`` NaN): ``T^2 * BCE(s / T, sigmoid(t / T))`` when a teacher is given, else nothing.

    ``T^2`` keeps the gradient scale of the soft term independent of ``T`` (Hinton et al., 2015, Sec. 2).
    The teacher logits are constants (detached); ``pos_weight`` applies to the labelled term only.

    Returns:
        ``loss``: sum of the contributions / number of contributing elements (0, still attached to
        ``logits``, when none contribute). With ``w = 0`` and no NaN it is exactly
        ``F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)``.
        ``bce``: mean of the unweighted labelled BCE over the labelled elements (0 when none).
        ``distill``: mean of ``T^2 * BCE(s / T, sigmoid(t / T))`` over all elements when a teacher is
        given (0 otherwise). Both are detached, for logging.
    """
    if not 0.0 <= teacher_weight <= 1.0:
        raise ConfigError(f"teacher_weight must lie in [0, 1], got {teacher_weight}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
    if teacher_logits is None and teacher_weight > 0:
        raise ConfigError(f"teacher_weight={teacher_weight} needs teacher_logits")
    if targets.shape != logits.shape:
        raise DataError(f"targets have shape {tuple(targets.shape)} but logits {tuple(logits.shape)}")
    if teacher_logits is not None and teacher_logits.shape != logits.shape:
        raise ConfigError(
            f"teacher logits have shape {tuple(teacher_logits.shape)} but student logits {tuple(logits.shape)}"
        )
    if pos_weight is not None:
        pos_weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
        try:
            broadcast = torch.broadcast_shapes(pos_weight.shape, logits.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != logits.shape:
            raise ConfigError(
                f"pos_weight of shape {tuple(pos_weight.shape)} does not fit logits of shape {tuple(logits.shape)}"
            )

    targets = targets.to(logits.dtype)
    known = ~torch.isnan(targets)
    zero = logits.new_zeros(())
    # NaN targets are replaced before the BCE so that no NaN reaches the graph (a masked NaN still
    # poisons the gradient through ``where``).
    bce = F.binary_cross_entropy_with_logits(
        logits, torch.where(known, targets, zero), pos_weight=pos_weight, reduction="none"
    )
    n_known = known.sum()
    bce_mean = torch.where(known, bce, zero).sum().detach() / n_known.clamp(min=1)

    if teacher_logits is None:
        contributions = torch.where(known, bce, zero)
        count = n_known
        distill_mean = zero.detach()
    else:
        soft = torch.sigmoid(teacher_logits.detach().to(logits.dtype) / temperature)
        distill = temperature**2 * F.binary_cross_entropy_with_logits(logits / temperature, soft, reduction="none")
        labelled = bce if teacher_weight == 0 else (1 - teacher_weight) * bce + teacher_weight * distill
        contributions = torch.where(known, labelled, distill)
        count = torch.tensor(logits.numel(), device=logits.device)
        distill_mean = distill.sum().detach() / max(logits.numel(), 1)

    loss = contributions.sum() / count.clamp(min=1)
    return {"loss": loss, "bce": bce_mean, "distill": distill_mean}

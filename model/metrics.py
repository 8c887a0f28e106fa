"""Semantic-segmentation metrics from a streaming, mergeable confusion matrix.

Conventions (the same as the usual mIoU tables, with two additions spelled out):

* Every figure is in **percent**.
* Labels are 0-based class indices; ``ignore_index`` (default -1) in the ground
  truth marks pixels that are not scored at all.
* A prediction equal to ``ignore_index`` means *no prediction* (e.g. a pixel no
  proposal covers in an oracle run): it is a miss for the ground-truth class of
  that pixel and a false positive for no class.
* A class absent from both the ground truth and the prediction (union 0) has no
  IoU: its per-class IoU is NaN and it is left out of every mean. A class absent
  from the ground truth but predicted somewhere has IoU 0 and counts. Per-class
  accuracy (recall) is NaN for a class with no ground-truth pixel and such a class
  is left out of mACC.
* fwIoU weights each class's IoU by its share of ground-truth pixels, so classes
  without ground truth do not contribute to it.
* hIoU is the harmonic mean of the mIoU over seen and over unseen classes (0 when
  either is 0, NaN when either is undefined). The unseen classes are those not seen
  unless an ``unseen`` mask says otherwise: a class in neither mask (a distractor name
  of a wide vocabulary that names no class of the world) counts in the mIoU only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


class ConfusionMatrix:
    """Pixel counts ``[ground truth, prediction]`` accumulated over many images.

    Internally the matrix has one extra prediction column (index ``num_classes``)
    counting ground-truth pixels that received no prediction. Two matrices of the
    same shape and ignore index add up with ``+`` / ``+=`` (parallel evaluation).
    """

    def __init__(self, num_classes: int, ignore_index: int = -1):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= int(ignore_index) < int(num_classes):
            raise ValueError(f"ignore_index {ignore_index} collides with a class index (0..{num_classes - 1})")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    # ------------------------------------------------------------------ counting
    def update(self, pred: ArrayLike, gt: ArrayLike) -> ConfusionMatrix:
        """Add one prediction/ground-truth pair of integer label arrays of equal shape.

        Accepts NumPy arrays or torch tensors; tensors on an accelerator are
        counted there (only the ``C × (C+1)`` counts come back to the host). Raises
        ``ValueError`` for mismatched shapes, non-integer arrays and labels outside
        ``0..num_classes-1`` other than ``ignore_index``. Returns ``self``.
        """
        if tuple(pred.shape) != tuple(gt.shape):
            raise ValueError(f"prediction shape {tuple(pred.shape)} != ground-truth shape {tuple(gt.shape)}")
        on_accelerator = any(isinstance(a, torch.Tensor) and a.device.type != "cpu" for a in (pred, gt))
        if on_accelerator:
            counts = self._counts_torch(_as_tensor(pred, "prediction"), _as_tensor(gt, "ground truth"))
        else:  # host arrays: NumPy's bincount is about twice as fast as torch's here
            counts = self._counts_numpy(_as_int_array(pred, "prediction"), _as_int_array(gt, "ground truth"))
        self._counts += counts
        return self

    def _counts_numpy(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        k = self.num_classes
        pred = pred.ravel().astype(np.int64, copy=False)
        gt = gt.ravel().astype(np.int64, copy=False)
        scored = gt != self.ignore_index
        pred, gt = pred[scored], gt[scored]
        _check_range(gt, k, None, "ground truth", self.ignore_index)
        _check_range(pred, k, self.ignore_index, "prediction", self.ignore_index)
        pred = np.where(pred == self.ignore_index, k, pred)
        flat = gt * (k + 1) + pred
        return np.bincount(flat, minlength=k * (k + 1)).reshape(k, k + 1)

    def _counts_torch(self, pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
        k = self.num_classes
        pred = pred.reshape(-1).long()
        gt = gt.reshape(-1).to(pred.device).long()
        scored = gt != self.ignore_index
        pred, gt = pred[scored], gt[scored]
        if gt.numel():
            bad_gt = (gt < 0) | (gt >= k)
            bad_pred = ((pred < 0) | (pred >= k)) & (pred != self.ignore_index)
            if bool(bad_gt.any()):
                raise ValueError(
                    f"ground truth has labels outside 0..{k - 1} (and ignore {self.ignore_index}): "
                    f"{sorted(set(gt[bad_gt].unique().tolist()))[:10]}"
                )
            if bool(bad_pred.any()):
                raise ValueError(
                    f"prediction has labels outside 0..{k - 1} (and ignore {self.ignore_index}): "
                    f"{sorted(set(pred[bad_pred].unique().tolist()))[:10]}"
                )
        pred = torch.where(pred == self.ignore_index, torch.full_like(pred, k), pred)
        # bincount without weights is deterministic on CUDA as well.
        counts = torch.bincount(gt * (k + 1) + pred, minlength=k * (k + 1))
        return counts.reshape(k, k + 1).cpu().numpy().astype(np.int64)

    # ------------------------------------------------------------------ merging
    def _check_compatible(self, other: ConfusionMatrix) -> None:
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"cannot merge a ConfusionMatrix with {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge confusion matrices of {self.num_classes} classes (ignore {self.ignore_index}) "
                f"and {other.num_classes} classes (ignore {other.ignore_index})"
            )

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        self._check_compatible(other)
        self._counts += other._counts
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        self._check_compatible(other)
        merged = ConfusionMatrix(self.num_classes, self.ignore_index)
        merged._counts = self._counts + other._counts
        return merged

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return (self.num_classes, self.ignore_index) == (other.num_classes, other.ignore_index) and bool(
            np.array_equal(self._counts, other._counts)
        )

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, pixels={self.total})"

    # ------------------------------------------------------------------ views
    @property
    def matrix(self) -> np.ndarray:
        """``[C, C]`` int64 counts, rows = ground truth, columns = prediction (a copy)."""
        return self._counts[:, : self.num_classes].copy()

    @property
    def unpredicted(self) -> np.ndarray:
        """``[C]`` ground-truth pixels per class that received no prediction (a copy)."""
        return self._counts[:, self.num_classes].copy()

    @property
    def total(self) -> int:
        """Number of scored (non-ignored) ground-truth pixels so far."""
        return int(self._counts.sum())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot (counts as nested lists) that ``from_dict`` restores."""
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "counts": self._counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfusionMatrix:
        cm = cls(int(data["num_classes"]), int(data.get("ignore_index", -1)))
        counts = np.asarray(data["counts"], dtype=np.int64)
        if counts.shape != cm._counts.shape or (counts < 0).any():
            raise ValueError(f"confusion counts of shape {counts.shape} do not fit {cm.num_classes} classes")
        cm._counts = counts
        return cm

    # ------------------------------------------------------------------ figures
    def summary(self, seen: ArrayLike | None = None, unseen: ArrayLike | None = None) -> dict[str, Any]:
        """Per-class and mean figures, all in percent (see the module docstring).

        Returns a dict with ``per_class_iou`` and ``per_class_acc`` (lists of length
        C, ``NaN`` where undefined), ``mIoU``, ``fwIoU``, ``mACC``, ``pACC``,
        ``pixels`` (scored pixels) and ``valid_classes`` (classes in the mIoU).
        When ``seen`` (bool array of length C) is given it also has ``mIoU_seen``,
        ``mIoU_unseen`` and their harmonic mean ``hIoU``; ``unseen`` (bool, length C,
        disjoint from ``seen``; default: not ``seen``) chooses the classes of
        ``mIoU_unseen``. Undefined means (no class to average, no pixel scored) are ``NaN``.
        """
        k = self.num_classes
        tp = np.diag(self._counts[:, :k]).astype(np.float64)
        gt_total = self._counts.sum(axis=1).astype(np.float64)
        pred_total = self._counts[:, :k].sum(axis=0).astype(np.float64)
        union = gt_total + pred_total - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, tp / union, np.nan) * 100.0
            acc = np.where(gt_total > 0, tp / gt_total, np.nan) * 100.0
        pixels = gt_total.sum()
        has_gt = gt_total > 0
        out: dict[str, Any] = {
            "per_class_iou": iou.tolist(),
            "per_class_acc": acc.tolist(),
            "mIoU": _nanmean(iou),
            "fwIoU": float((gt_total[has_gt] * iou[has_gt]).sum() / pixels) if pixels > 0 else math.nan,
            "mACC": _nanmean(acc),
            "pACC": float(tp.sum() / pixels * 100.0) if pixels > 0 else math.nan,
            "pixels": int(pixels),
            "valid_classes": int(np.isfinite(iou).sum()),
        }
        if seen is not None:
            is_seen = _as_bool_vector(seen, k)
            is_unseen = ~is_seen if unseen is None else _as_bool_vector(unseen, k)
            if (is_seen & is_unseen).any():
                raise ValueError("a class cannot be both seen and unseen")
            m_seen = _nanmean(iou[is_seen])
            m_unseen = _nanmean(iou[is_unseen])
            out["mIoU_seen"] = m_seen
            out["mIoU_unseen"] = m_unseen
            out["hIoU"] = harmonic_mean(m_seen, m_unseen)
        return out


def harmonic_mean(a: float, b: float) -> float:
    """Harmonic mean of two non-negative figures; NaN if either is NaN, 0 if either is 0."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if a <= 0 or b <= 0:
        return 0.0
    return 2.0 * a * b / (a + b)


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _as_bool_vector(seen: ArrayLike, k: int) -> np.ndarray:
    if isinstance(seen, torch.Tensor):
        seen = seen.detach().cpu().numpy()
    seen = np.asarray(seen)
    if seen.shape != (k,):
        raise ValueError(f"seen must be a boolean vector of length {k}, got shape {seen.shape}")
    if seen.dtype != np.bool_:
        if not np.isin(seen, (0, 1)).all():
            raise ValueError("seen must hold booleans (or 0/1)")
        seen = seen.astype(bool)
    return seen


def _as_int_array(a: ArrayLike, what: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        if a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool:
            raise ValueError(f"{what} must be an integer label tensor, got dtype {a.dtype}")
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what} must be an integer label array, got dtype {a.dtype}")
    return a


def _as_tensor(a: ArrayLike, what: str) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(_as_int_array(a, what)))
    if a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool:
        raise ValueError(f"{what} must be an integer label tensor, got dtype {a.dtype}")
    return a


def _check_range(labels: np.ndarray, k: int, allowed: int | None, what: str, ignore_index: int) -> None:
    bad = (labels < 0) | (labels >= k)
    if allowed is not None:
        bad &= labels != allowed
    if bad.any():
        raise ValueError(
            f"{what} has labels outside 0..{k - 1} (and ignore {ignore_index}): {np.unique(labels[bad])[:10].tolist()}"
        )

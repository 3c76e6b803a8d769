"""U2PL's pixel contrastive term with per-class memory queues of unreliable negatives.

U2PL (Wang et al., "Semi-Supervised Semantic Segmentation Using Unreliable Pseudo-Labels",
CVPR 2022, §3.3) as used by S4MC's code base A (``method.contrastive=u2pl``; U2PL
``u2pl/utils/loss_helper.py``, S4MC ``train_semi.py``; docs/REFERENCES.md). Per class c present:

- **anchors**: up to ``num_queries`` (256) *student* representations of reliable class-c pixels
  (labeled ground truth, or low-entropy pseudo-labels) whose teacher probability of c is > 0.3;
- **positive**: the mean *teacher* representation of all reliable class-c pixels;
- **negatives**: ``num_negatives`` (50) per anchor drawn from class c's memory queue, which holds
  teacher representations of pixels that are probably *not* c but confusable with it —
  unreliable (high-entropy) unlabeled pixels whose teacher ranks c in [``low_rank``,
  ``high_rank``) = 4th–20th, and labeled pixels whose teacher top-``low_rank`` contains c while
  the ground truth is another class;
- InfoNCE over cosine similarities / temperature 0.5 with the positive at index 0.

The class losses are averaged over the classes present. This follows the paper's definition
(U2PL §3.3); U2PL's released ``compute_contra_memobank_loss`` deviates from it in two known ways
that are *not* reproduced here: its negative mask also requires the pixel's label to *be* c, so
no labeled negative is ever collected (U2PL issue #171), and it indexes anchors/positives by the
position in the list of present classes instead of the class id (U2PL issue #111).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from leseg.components.pseudo_labels import percentile


def all_gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """All-gather the (N_r, D) keys of every rank (N_r may differ) into one (ΣN_r, D) tensor.

    The ``gather_keys`` argument of :func:`u2pl_contrastive_loss` under DDP: every rank then
    enqueues the same keys and keeps identical memory queues, as U2PL's ``dequeue_and_enqueue``
    does with its ``concat_all_gather`` (``u2pl/utils/utils.py``). Keys are padded to the largest
    N_r for the collective and cut back afterwards; rank order is kept.

    Args:
        keys: (N_r, D) float teacher representations on this rank's device (N_r may be 0).

    Returns:
        ``keys`` itself outside an initialised process group or with one rank, else the
        (ΣN_r, D) concatenation over ranks 0, 1, ... (same dtype and device).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return keys
    count = torch.tensor([keys.shape[0]], device=keys.device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    largest = int(max(int(c) for c in counts))
    padded = keys.new_zeros(largest, keys.shape[1])
    padded[: keys.shape[0]] = keys
    gathered = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(c)] for g, c in zip(gathered, counts, strict=True)])


def u2pl_queue_sizes(num_classes: int, size: int = 30_000,
                     background_size: int = 50_000) -> list[int]:
    """U2PL's queue capacities: ``background_size`` (50k) for class 0, ``size`` (30k) for others."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return [background_size] + [size] * (num_classes - 1)


class ClassMemoryQueues(nn.Module):
    """Per-class FIFO queues of feature vectors (U2PL's memory bank of negatives).

    Queue c holds at most ``sizes[c]`` vectors of dimension ``dim``. It grows until full; after
    that each enqueue overwrites the oldest entries (ring buffer). Entries are registered buffers
    (``queue_<c>``, plus the write pointers ``ptr``), so they move with ``.to(device)`` and are
    saved/restored with ``state_dict``/``load_state_dict`` (a queue's stored length may differ
    from the receiving module's; it is resized on load).

    Memory when full: Σ_c sizes[c] · dim · 4 bytes in float32 (VOC, U2PL sizes, dim 256:
    ≈ 0.67 GB), so consider keeping the module on the CPU or a smaller size for small GPUs.

    Multi-GPU: U2PL all-gathers the new keys of every rank before enqueueing so all ranks hold
    the same queues; pass ``gather_keys`` to :func:`u2pl_contrastive_loss` to do the same.

    Args:
        num_classes: C ≥ 1.
        dim: feature dimension D ≥ 1 (U2PL representation head: 256).
        sizes: one capacity for all classes, or a sequence of C capacities (each ≥ 1), e.g.
            :func:`u2pl_queue_sizes`.
        dtype: storage dtype (float32).

    Raises:
        ValueError: bad ``num_classes``, ``dim`` or ``sizes``.
    """

    def __init__(self, num_classes: int, dim: int, sizes: int | Sequence[int] = 30_000,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(f"num_classes and dim must be >= 1, got {num_classes}, {dim}")
        if isinstance(sizes, int):
            sizes_list = [int(sizes)] * num_classes
        else:
            sizes_list = [int(s) for s in sizes]
        if len(sizes_list) != num_classes or min(sizes_list) < 1:
            raise ValueError(f"sizes must be one int >= 1 or {num_classes} ints >= 1, got {sizes}")
        self.num_classes = num_classes
        self.dim = dim
        self.sizes = sizes_list
        for c in range(num_classes):
            self.register_buffer(f"queue_{c}", torch.zeros(0, dim, dtype=dtype))
        # index of the oldest entry of a full queue (= next write position); 0 while growing
        self.register_buffer("ptr", torch.zeros(num_classes, dtype=torch.long))

    def _queue(self, c: int) -> torch.Tensor:
        if not 0 <= c < self.num_classes:
            raise IndexError(f"class {c} outside [0, {self.num_classes})")
        return getattr(self, f"queue_{c}")

    def length(self, c: int) -> int:
        """Number of vectors currently stored for class c (≤ ``sizes[c]``)."""
        return self._queue(c).shape[0]

    def entries(self, c: int) -> torch.Tensor:
        """Stored vectors of class c, oldest first: (length(c), D)."""
        queue = self._queue(c)
        start = int(self.ptr[c])
        return torch.cat([queue[start:], queue[:start]]) if start else queue

    @torch.no_grad()
    def enqueue(self, c: int, keys: torch.Tensor) -> int:
        """Append ``keys`` (N, D) to queue c, dropping the oldest entries beyond its capacity.

        Keys are detached and converted to the queue's device/dtype. Returns N (the number of
        keys offered, as U2PL's ``dequeue_and_enqueue`` does).

        Raises:
            IndexError: c outside [0, C).
            ValueError: ``keys`` is not (N, D).
        """
        queue = self._queue(c)
        if keys.dim() != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"keys for class {c} must be (N, {self.dim}), got {tuple(keys.shape)}")
        num = keys.shape[0]
        if num == 0:
            return 0
        keys = keys.detach().to(device=queue.device, dtype=queue.dtype)
        size = self.sizes[c]
        if keys.shape[0] > size:
            keys = keys[-size:]
        if queue.shape[0] < size:  # still growing: append, keep the newest `size`
            grown = torch.cat([queue, keys])[-size:]
            setattr(self, f"queue_{c}", grown.contiguous())
            self.ptr[c] = 0
        else:  # full ring buffer: overwrite from the oldest entry on
            start = int(self.ptr[c])
            positions = (start + torch.arange(keys.shape[0], device=queue.device)) % size
            queue[positions] = keys
            self.ptr[c] = (start + keys.shape[0]) % size
        return num

    def sample(self, c: int, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` vectors of queue c drawn uniformly with replacement: (num, D).

        Raises:
            ValueError: queue c is empty.
        """
        queue = self._queue(c)
        if queue.shape[0] == 0:
            raise ValueError(f"memory queue of class {c} is empty, nothing to sample")
        index = torch.randint(queue.shape[0], (num,), generator=generator)
        return queue[index.to(queue.device)]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        # Queues change length while filling up: resize to the saved length before loading.
        for c in range(self.num_classes):
            key = f"{prefix}queue_{c}"
            saved = state_dict.get(key)
            if saved is None:
                continue
            if saved.dim() != 2 or saved.shape[1] != self.dim or saved.shape[0] > self.sizes[c]:
                raise ValueError(f"checkpoint entry {key} has shape {tuple(saved.shape)}, expected "
                                 f"(≤{self.sizes[c]}, {self.dim})")
            current = self._queue(c)
            setattr(self, f"queue_{c}", current.new_zeros(saved.shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def u2pl_entropy_percent(step: float, total: float = 1.0,
                         low_entropy_threshold: float = 20.0) -> float:
    """α_t = ``low_entropy_threshold``·(1 − step/total) in %: share of reliable/unreliable pixels.

    U2PL (``train_semi.py``): reliable = the α_t % lowest-entropy pixels, unreliable = the
    α_t % highest; 20 % → 0 %. ``step``/``total`` as in :func:`~leseg.components.pseudo_labels.
    dpa_drop_percent` (epochs in the reference, or iterations / a progress fraction).

    Raises:
        ValueError: total ≤ 0, step/total outside [0, 1], threshold outside [0, 50].
    """
    if total <= 0:
        raise ValueError(f"total must be > 0, got {total}")
    progress = step / total
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress step/total must be in [0, 1], got {step}/{total}")
    if not 0.0 <= low_entropy_threshold <= 50.0:
        raise ValueError(f"low_entropy_threshold must be in [0, 50] %, got {low_entropy_threshold}")
    return low_entropy_threshold * (1.0 - progress)


def pixel_entropy(probs: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-pixel Shannon entropy −Σ_c p·log(p + eps) in nats.

    (B, C, H, W) probabilities → (B, H, W) float in [0, log C] (U2PL adds eps = 1e-10).
    """
    return -(probs * torch.log(probs + eps)).sum(dim=1)


def entropy_reliability_masks(probs: torch.Tensor, valid: torch.Tensor,
                              alpha_percent: float) -> tuple[torch.Tensor, torch.Tensor]:
    """U2PL's reliable / unreliable partition of unlabeled pixels by teacher entropy.

    reliable = valid & entropy ≤ percentile_α(entropy); unreliable = valid & entropy ≥
    percentile_{100−α}(entropy); percentiles over the valid pixels of the batch, numpy "linear"
    convention (:func:`~leseg.components.pseudo_labels.percentile`).

    Args:
        probs: (B, C, H, W) teacher softmax of the unlabeled images.
        valid: (B, H, W) bool, False at padded / ignored pixels.
        alpha_percent: α in [0, 100] (:func:`u2pl_entropy_percent`).

    Returns:
        ``(reliable, unreliable)``, both (B, H, W) bool; all False when no pixel is valid.

    Raises:
        ValueError: shape mismatch or non-bool ``valid``.
    """
    if probs.dim() != 4 or valid.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"probs (B, C, H, W) {tuple(probs.shape)} and valid (B, H, W) "
                         f"{tuple(valid.shape)} do not match")
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool mask, got {valid.dtype}")
    entropy = pixel_entropy(probs)
    if not bool(valid.any()):
        return torch.zeros_like(valid), torch.zeros_like(valid)
    values = entropy[valid]
    low = percentile(values, alpha_percent)
    high = percentile(values, 100.0 - alpha_percent)
    return valid & (entropy <= low), valid & (entropy >= high)


def class_ranks(probs: torch.Tensor) -> torch.Tensor:
    """0-based rank of every class per pixel by descending probability: (B, C, H, W) int64.

    Rank 0 is the argmax; ties are broken by class index (stable sort).
    """
    order = probs.argsort(dim=1, descending=True, stable=True)
    return order.argsort(dim=1, stable=True)


def negative_candidates(teacher_probs: torch.Tensor, labels: torch.Tensor, unreliable: torch.Tensor,
                        is_labeled: torch.Tensor, low_rank: int = 3, high_rank: int = 20,
                        ignore_index: int = 255) -> torch.Tensor:
    """Where each class c collects negative keys (U2PL §3.3, ``compute_contra_memobank_loss``).

    - unlabeled image: pixel is ``unreliable`` and the teacher ranks c in [low_rank, high_rank)
      (0-based; default 4th–20th: probably not c, but not among the most unlikely classes);
    - labeled image: pixel is labeled (≠ ``ignore_index``), its ground truth is not c, and the
      teacher ranks c in [0, low_rank) (confused with c).

    Args:
        teacher_probs: (B, C, h, w) teacher softmax at the representation resolution.
        labels: (B, h, w) int64, ground truth for labeled images (``ignore_index`` excluded).
        unreliable: (B, h, w) bool high-entropy mask (only used for unlabeled images).
        is_labeled: (B,) bool, True for labeled images.
        low_rank, high_rank: rank window, 0 ≤ low_rank < high_rank.

    Returns:
        (B, C, h, w) bool: True where the pixel is a negative for class c.

    Raises:
        ValueError: shape mismatch or bad rank window.
    """
    batch, num_classes, height, width = teacher_probs.shape
    if labels.shape != (batch, height, width) or unreliable.shape != labels.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and unreliable {tuple(unreliable.shape)} "
                         f"must be (B, h, w) = {(batch, height, width)}")
    if is_labeled.shape != (batch,):
        raise ValueError(f"is_labeled must be ({batch},) bool, got {tuple(is_labeled.shape)}")
    if not 0 <= low_rank < high_rank:
        raise ValueError(f"need 0 <= low_rank < high_rank, got {low_rank}, {high_rank}")
    ranks = class_ranks(teacher_probs)
    class_ids = torch.arange(num_classes, device=labels.device).view(1, -1, 1, 1)
    labeled = is_labeled.view(-1, 1, 1, 1)
    unlabeled_neg = unreliable.unsqueeze(1) & (ranks >= low_rank) & (ranks < high_rank)
    labeled_neg = ((labels != ignore_index) & (labels >= 0)).unsqueeze(1) \
        & (labels.unsqueeze(1) != class_ids) & (ranks < low_rank)
    return torch.where(labeled, labeled_neg, unlabeled_neg)


def u2pl_contrastive_loss(
    student_rep: torch.Tensor,
    teacher_rep: torch.Tensor,
    teacher_probs: torch.Tensor,
    labels: torch.Tensor,
    reliable: torch.Tensor,
    unreliable: torch.Tensor,
    is_labeled: torch.Tensor,
    queues: ClassMemoryQueues,
    num_queries: int = 256,
    num_negatives: int = 50,
    anchor_prob_thresh: float = 0.3,
    negative_prob_thresh: float = 1.0,
    low_rank: int = 3,
    high_rank: int = 20,
    temperature: float = 0.5,
    ignore_index: int = 255,
    generator: torch.Generator | None = None,
    gather_keys: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """U2PL contrastive loss with memory-queue negatives (U2PL §3.3; ``loss_helper.py``).

    Order of operations as in U2PL: first every class's new negative keys (teacher
    representations at :func:`negative_candidates` pixels whose teacher probability of c is
    < ``negative_prob_thresh``) are enqueued into ``queues`` (mutated in place), then the loss is
    computed with negatives sampled from the updated queues. For each class c with at least one
    reliable pixel (labels == c & ``reliable``)::

        anchors  a_1..a_Q ~ student_rep at reliable class-c pixels with teacher p_c > 0.3
        positive k+       = mean of teacher_rep over all reliable class-c pixels
        negatives k-_q,1..K ~ queue c
        ℓ_c = mean_q −log( exp(cos(a_q, k+)/τ) / (exp(cos(a_q, k+)/τ) + Σ_k exp(cos(a_q, k-)/τ)) )

    Anchors and negatives are sampled uniformly with replacement. The loss is Σ_c ℓ_c / (number
    of classes with reliable pixels); a class without anchors or with an empty queue contributes
    0 but still counts in the denominator, and fewer than two such classes give 0 (all as in
    U2PL). Gradients flow into ``student_rep`` only.

    Args:
        student_rep: (B, D, h, w) float student representations (representation head output).
        teacher_rep: (B, D, h, w) float teacher representations (detached here).
        teacher_probs: (B, C, h, w) teacher softmax at the same resolution.
        labels: (B, h, w) int64: ground truth for labeled images, (unfiltered) teacher
            pseudo-labels for unlabeled ones; ``ignore_index`` pixels are never used. Inputs at
            a higher resolution must be downsampled by the caller (U2PL: nearest).
        reliable: (B, h, w) bool: labeled valid pixels and low-entropy unlabeled pixels
            (:func:`entropy_reliability_masks`).
        unreliable: (B, h, w) bool: high-entropy unlabeled pixels (labeled images: unused).
        is_labeled: (B,) bool.
        queues: :class:`ClassMemoryQueues` with C classes and dimension D.
        num_queries: Q anchors per class (256). num_negatives: K per anchor (50).
        anchor_prob_thresh: δ_p (0.3). negative_prob_thresh: δ_n (1.0 = no constraint).
        low_rank, high_rank: rank window of :func:`negative_candidates` (3, 20).
        temperature: τ > 0 (0.5).
        generator: optional RNG for the sampling (CPU generator).
        gather_keys: optional callable applied to each class's new keys (N, D) before enqueueing,
            e.g. an all-gather across ranks under DDP.

    Returns:
        ``(loss, stats)``: scalar float tensor (attached to ``student_rep``), and a dict with
        ``classes`` (classes with reliable pixels) and ``new_keys`` (keys enqueued this call).

    Raises:
        ValueError: shape mismatches between the inputs or with ``queues``; temperature ≤ 0.
    """
    batch, dim, height, width = student_rep.shape
    num_classes = teacher_probs.shape[1]
    if teacher_rep.shape != student_rep.shape:
        raise ValueError(f"teacher_rep {tuple(teacher_rep.shape)} must match student_rep "
                         f"{tuple(student_rep.shape)}")
    if teacher_probs.shape != (batch, num_classes, height, width):
        raise ValueError(f"teacher_probs must be (B, C, h, w) with (B, h, w) = "
                         f"{(batch, height, width)}, got {tuple(teacher_probs.shape)}")
    for name, mask in (("reliable", reliable), ("unreliable", unreliable)):
        if mask.shape != (batch, height, width) or mask.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool (B, h, w) = {(batch, height, width)} mask, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
    if queues.num_classes != num_classes or queues.dim != dim:
        raise ValueError(f"queues hold {queues.num_classes} classes of dimension {queues.dim}, but "
                         f"the inputs have C={num_classes}, D={dim}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    student = student_rep.permute(0, 2, 3, 1)  # (B, h, w, D)
    with torch.no_grad():
        teacher = teacher_rep.detach().permute(0, 2, 3, 1)
        probs = teacher_probs.detach()
        negatives = negative_candidates(probs, labels, unreliable, is_labeled, low_rank,
                                        high_rank, ignore_index)
        negatives &= probs < negative_prob_thresh
        new_keys = 0
        for c in range(num_classes):
            keys = teacher[negatives[:, c]]
            if gather_keys is not None:
                keys = gather_keys(keys)
            new_keys += queues.enqueue(c, keys)

    class_losses: list[torch.Tensor] = []
    targets = torch.zeros(num_queries, dtype=torch.long, device=student_rep.device)
    for c in range(num_classes):
        member = reliable & (labels == c)
        if not bool(member.any()):
            continue
        anchor_mask = member & (probs[:, c] > anchor_prob_thresh)
        candidates = student[anchor_mask]
        if candidates.shape[0] == 0 or queues.length(c) == 0:
            class_losses.append(student_rep.sum() * 0.0)
            continue
        index = torch.randint(candidates.shape[0], (num_queries,), generator=generator)
        anchors = candidates[index.to(candidates.device)]  # (Q, D)
        with torch.no_grad():
            positive = teacher[member].mean(dim=0)  # (D,)
            negative = queues.sample(c, num_queries * num_negatives, generator)
            negative = negative.to(anchors).view(num_queries, num_negatives, dim)
            keys = torch.cat([positive.expand(num_queries, 1, dim), negative], dim=1)
        logits = F.cosine_similarity(anchors.unsqueeze(1), keys, dim=2) / temperature
        class_losses.append(F.cross_entropy(logits, targets))

    stats = {"classes": len(class_losses), "new_keys": new_keys}
    if len(class_losses) <= 1:
        return student_rep.sum() * 0.0, stats
    return torch.stack(class_losses).sum() / len(class_losses), stats


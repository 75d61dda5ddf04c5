"""The two tasks sharing one architecture: segmentation and the 4-channel auto-encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NUM_CLASSES = 4


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the batch's labels, pooled over the batch.

    A class absent from the batch (T1 has no RV or LV label, RVSC only the RV) is left to
    the cross-entropy: its smoothed Dice, 1 / (sum of its probabilities + 1), would only
    reach 1 once every pixel's probability of it fell near 1e-5, and until then that term
    alone holds the loss up and crowds out the classes the task has.
    """
    probs = logits.float().softmax(dim=1)
    one_hot = F.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    truth = one_hot.sum(dims)
    dice = (2.0 * intersection + 1.0) / (probs.sum(dims) + truth + 1.0)
    return 1.0 - dice[truth > 0].mean()


def task_loss(
    task: str, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, dice_weight: float
) -> torch.Tensor:
    if task == "seg":
        ce = F.cross_entropy(output.float(), labels)
        return ce + dice_weight * soft_dice_loss(output, labels) if dice_weight else ce
    # the auto-encoder regresses the input image in each of its 4 channels
    return F.mse_loss(output.float(), images.float().expand_as(output))

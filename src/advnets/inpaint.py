"""Conditionals p(x_S | x_not-S): inpainting with one model (paper §7.3).

"One can learn to approximately model all conditionals p(x_S | x_not-S) where S
is a subset of the indices of x by training a family of conditional models
that share parameters." Here that family is one conditional G: for a mask M
(1 = hidden pixel) and an image x, G receives ``[z, x * (1 - M), M]`` and
returns a whole image; the completion keeps the visible pixels and takes the
hidden ones from G::

    completed = M * G(z, x * (1 - M), M) + (1 - M) * x

D sees rows ``[completed, M]`` for generated rows and ``[x, M]`` for real
ones (each real row with a freshly drawn mask), so it must judge whether the
filled-in part fits the rest. Masks are drawn per image from :data:`MASKS`
("mixed" picks one of the others at random), so the shared parameters learn
every kind.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from advnets.errors import AdvnetsError

#: Mask kinds: which part of the image is hidden (and generated).
MASKS = ("right-half", "left-half", "top-half", "bottom-half", "block", "mixed")
_FIXED = MASKS[:5]


def make_masks(
    n: int, image_shape: tuple[int, ...], kind: str, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """n flat masks (n x pixels, 1.0 = hidden) of one kind; "block" hides a random
    square of half the image's side, "mixed" draws a kind per image."""
    if kind not in MASKS:
        raise AdvnetsError(f"--mask {kind}: expected one of {', '.join(MASKS)}")
    c, h, w = image_shape
    m = torch.zeros(n, c, h, w, device=device)
    kinds = (
        [_FIXED[int(i)] for i in torch.randint(len(_FIXED), (n,), generator=generator)]
        if kind == "mixed"
        else [kind] * n
    )
    side = max(1, h // 2), max(1, w // 2)
    tops = torch.randint(h - side[0] + 1, (n,), generator=generator)
    lefts = torch.randint(w - side[1] + 1, (n,), generator=generator)
    for i, k in enumerate(kinds):
        if k == "right-half":
            m[i, :, :, w // 2 :] = 1
        elif k == "left-half":
            m[i, :, :, : w - w // 2] = 1
        elif k == "top-half":
            m[i, :, : h - h // 2, :] = 1
        elif k == "bottom-half":
            m[i, :, h // 2 :, :] = 1
        else:
            top, left = int(tops[i]), int(lefts[i])
            m[i, :, top : top + side[0], left : left + side[1]] = 1
    return m.reshape(n, -1)


def g_input(z: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """G's input ``[z, x * (1 - M), M]``: the noise, the visible pixels and the mask."""
    x = images.reshape(len(images), -1)
    return torch.cat([z, x * (1 - masks), masks], dim=1)


def complete(g_out: torch.Tensor, g_in: torch.Tensor, pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(completed images, masks) from G's output and its input: hidden pixels from G, the rest kept."""
    visible, masks = g_in[:, -2 * pixels : -pixels], g_in[:, -pixels:]
    return masks * g_out.reshape(len(g_out), -1) + visible, masks


@torch.no_grad()
def completions(g: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """k completions of every image (n x k x pixels), each from fresh noise; G in eval mode."""
    from advnets.nets import sample_noise

    if g.cfg.condition != "inpaint":
        raise AdvnetsError("this model was not trained for inpainting (train it with --inpaint)")
    device = next(g.parameters()).device
    n, pixels = len(images), masks.shape[1]
    gen = torch.Generator().manual_seed(seed)
    x = images.reshape(n, -1).repeat_interleave(k, dim=0).to(device)
    m = masks.repeat_interleave(k, dim=0).to(device)
    z = sample_noise(g.cfg, n * k, generator=gen).to(device)
    was_training = g.training
    g.eval()
    try:
        zin = g_input(z, x, m)
        done, _ = complete(g(zin), zin, pixels)
    finally:
        g.train(was_training)
    return done.cpu().reshape(n, k, pixels)


def evaluate_inpainting(
    g: torch.nn.Module, test: torch.Tensor, train: torch.Tensor, kind: str, k: int = 5, seed: int = 0
) -> dict[str, Any]:
    """How close the completions of held-out images come to the hidden truth.

    Root-mean-square error over the hidden pixels of each completion against
    the true image, averaged, beside two baselines: (a) the hidden part of a
    random training image pasted in (what an unconditional model as good as the
    data would give) and (b) the mean training image's hidden part; and the
    completions' diversity: the RMS difference between two completions of the
    same image (0 would mean G ignores z).
    """
    gen = torch.Generator().manual_seed(seed)
    n = len(test)
    x = test.reshape(n, -1).float()
    masks = make_masks(n, tuple(test.shape[1:]), kind, generator=gen)
    hidden = masks.sum(1).clamp(min=1)

    def rms(a: torch.Tensor) -> torch.Tensor:  # per image, over its hidden pixels
        return ((a * masks) ** 2).sum(1).div(hidden).sqrt()

    done = completions(g, test, masks, k, seed)
    err = torch.stack([rms(done[:, j] - x) for j in range(k)], dim=1)
    flat_train = train.reshape(len(train), -1).float()
    pasted = flat_train[torch.randint(len(flat_train), (n,), generator=gen)]
    mean_image = flat_train.mean(0, keepdim=True)
    spread = torch.stack([rms(done[:, a] - done[:, b]) for a in range(k) for b in range(a + 1, k)], dim=1)
    return {
        "mask": kind,
        "images": n,
        "completions_per_image": k,
        "rmse_completion": float(err.mean()),
        "rmse_best_of_k": float(err.min(dim=1).values.mean()),
        "rmse_random_training_image": float(rms(pasted - x).mean()),
        "rmse_mean_image": float(rms(mean_image - x).mean()),
        "completion_diversity": float(spread.mean()) if k > 1 else math.nan,
    }


def figure_rows(test: torch.Tensor, masks: torch.Tensor, done: torch.Tensor, shade: float = 0.5) -> torch.Tensor:
    """Rows of (masked input with the hidden part grey, the completions, the original), as N x C x H x W."""
    n, k, pixels = done.shape
    shape = test.shape[1:]
    x = test.reshape(n, -1)
    masked = x * (1 - masks) + shade * masks
    rows = [torch.cat([masked[i : i + 1], done[i], x[i : i + 1]]) for i in range(n)]
    return torch.cat(rows).reshape(n * (k + 2), *shape)

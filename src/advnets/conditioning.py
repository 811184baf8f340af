"""What G is given and what D sees, chosen once per run: plain, class-conditional or inpainting nets.

Algorithm 1 (paper §3) only ever asks for three things, and this module answers them for each kind of model:

* D's rows for a real minibatch x;
* G's input for m generated rows ("sample minibatch of m noise samples");
* D's rows for G's output.

The kinds (``generator.condition``):

* ``none``: the paper's plain nets. G's input is z, D sees x and G(z).
* ``class`` (paper §7.1): "a conditional generative model p(x | c) can be obtained by adding c
  as input to both G and D". Real rows carry their own one-hot labels; generated rows labels drawn uniformly from
  the run's ``labels`` stream, so G learns every class equally often (advnets.conditional).
* ``inpaint`` (§7.3): one G for every conditional p(x_S | x_not-S). Each real row gets a fresh mask from the
  ``masks`` stream; G completes the last real batch under its masks, and D sees completed images with their masks
  (advnets.inpaint).

The same objects build the fixed-noise progress grid and the collapse monitor's noise.
"""

from __future__ import annotations

from typing import Any

import torch

from advnets.errors import AdvnetsError
from advnets.inpaint import MASKS, complete, make_masks
from advnets.inpaint import g_input as inpaint_input


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(dtype)


def with_condition(rows: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[rows, one_hot(labels)]``: G's input from noise, or D's input from flat images."""
    return torch.cat([rows.reshape(len(rows), -1), one_hot(labels, num_classes, rows.dtype)], dim=1)


def check_labels(labels: torch.Tensor | None, num_classes: int, dataset_name: str) -> torch.Tensor:
    """The dataset's training labels, checked to fit a ``num_classes`` one-hot code."""
    if labels is None or (len(labels) and int(labels.min()) < 0):  # -1 marks an unlabelled image
        raise AdvnetsError(f"--conditional needs class labels, and {dataset_name} has none (or not for every image)")
    if len(labels) and int(labels.max()) >= num_classes:
        raise AdvnetsError(
            f"--conditional: {dataset_name} has labels {int(labels.min())}..{int(labels.max())}, "
            f"but the nets are built for {num_classes} classes (0..{num_classes - 1})"
        )
    return labels


def grid_labels(n: int, num_classes: int, columns: int) -> torch.Tensor:
    """Labels for an ``n``-image grid of ``columns`` images per row: row r shows class r mod K."""
    return (torch.arange(n) // columns) % num_classes


class Plain:
    """The paper's nets: G(z) and D(x)."""

    kind = "none"

    def real_rows(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """D's rows for the real minibatch ``x`` (flat), rows ``idx`` of the training split."""
        return x

    def g_input(self, z: torch.Tensor) -> torch.Tensor:
        """G's input for the noise rows ``z`` of a training step."""
        return z

    def d_rows(self, fake: torch.Tensor, g_input: torch.Tensor) -> torch.Tensor:
        """D's rows for G's output ``fake`` from ``g_input``."""
        return fake

    def grid_input(self, z: torch.Tensor, data: torch.Tensor, image_shape, generator: torch.Generator):
        """G's input for the progress grid from its fixed noise ``z`` (10 x 10 images)."""
        return z

    def grid_images(self, out: torch.Tensor, g_input: torch.Tensor) -> torch.Tensor:
        """The grid's images (flat) from G's output."""
        return out

    def monitor_input(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """G's input for the collapse monitor's checks, or None where its statistics do not apply."""
        return z

    def state_dict(self) -> Any:
        return None

    def load_state_dict(self, state: Any) -> None:
        """Restore what state_dict() returned (tensors are moved to the training device)."""


class ClassConditional(Plain):
    """p(x | c), the paper's §7.1: a one-hot label appended to G's input and to D's rows."""

    kind = "class"

    def __init__(self, labels: torch.Tensor, num_classes: int, label_stream: torch.Generator) -> None:
        self.labels = labels  # the training split's labels, on the training device
        self.k = num_classes
        self.stream = label_stream

    def real_rows(self, x, idx):
        return with_condition(x, self.labels.index_select(0, idx), self.k)  # [x, c]: real rows carry their labels

    def g_input(self, z):
        labels = torch.randint(self.k, (len(z),), generator=self.stream, device=self.stream.device)
        return with_condition(z, labels, self.k)

    def d_rows(self, fake, g_input):
        return torch.cat([fake, g_input[:, -self.k :]], dim=1)  # G(z, c) scored against the same c

    def grid_input(self, z, data, image_shape, generator):
        return with_condition(z, grid_labels(len(z), self.k, columns=10).to(z.device), self.k)  # a class per row

    def monitor_input(self, z, generator):
        labels = torch.randint(self.k, (len(z),), generator=generator).to(z.device)
        return with_condition(z, labels, self.k)


class Inpainting(Plain):
    """All conditionals p(x_S | x_not-S) in one model, the paper's §7.3: G gets [z, x * (1 - M), M] and D sees
    [completed, M] for generated rows, [x, M] for real ones."""

    kind = "inpaint"

    def __init__(self, image_shape: tuple[int, ...], pixels: int, mask_stream: torch.Generator, device) -> None:
        self.image_shape, self.pixels, self.stream, self.device = image_shape, pixels, mask_stream, device
        # The last real batch with its masks: G's next rows complete it (kept in checkpoints).
        self.context: tuple[torch.Tensor, torch.Tensor] | None = None
        self.refill = None  # set by the trainer: draws a real batch when G needs one before any (after a resume)

    def real_rows(self, x, idx):
        masks = make_masks(len(x), self.image_shape, "mixed", self.stream).to(x.device)
        self.context = (x, masks)
        return torch.cat([x, masks], dim=1)

    def g_input(self, z):
        if self.context is None:  # (the G step of a run resumed just before it draws its own)
            self.refill()
        x, masks = self.context
        n = len(z)
        return inpaint_input(z, x[:n], masks[:n])

    def d_rows(self, fake, g_input):
        return torch.cat(complete(fake, g_input, self.pixels), dim=1)

    def grid_input(self, z, data, image_shape, generator):
        # Row i completes training image i under mask kind i mod 5, with 10 noise vectors.
        masks = torch.cat([make_masks(1, image_shape, MASKS[i % 5], generator) for i in range(10)])
        images = data[:10].repeat_interleave(10, dim=0)
        return inpaint_input(z, images, masks.repeat_interleave(10, dim=0).to(z.device))

    def grid_images(self, out, g_input):
        return complete(out, g_input, self.pixels)[0]  # rows of one image's completions

    def monitor_input(self, z, generator):
        return None  # completions share their visible pixels: the diversity statistics do not apply

    def state_dict(self):
        return self.context

    def load_state_dict(self, state):
        if state is not None:
            self.context = tuple(t.to(self.device) for t in state)


def conditioning_for(cfg, dataset, data: torch.Tensor, streams) -> Plain:
    """The conditioning of a run: ``cfg`` a RunConfig, ``data`` the flat training split on the training device,
    ``streams`` the run's advnets.train.streams.Streams. Raises AdvnetsError when the data do not fit the nets."""
    kind, cond_dim = cfg.generator.condition, cfg.generator.cond_dim
    if kind == "class":
        labels = check_labels(dataset.train_labels, cond_dim, dataset.name).to(data.device)
        return ClassConditional(labels, cond_dim, streams.labels)
    if kind == "inpaint":
        pixels = data.shape[1]
        if cond_dim != 2 * pixels:
            raise AdvnetsError(
                f"an inpainting model for {pixels}-pixel images needs generator.cond_dim {2 * pixels}, got {cond_dim}"
            )
        return Inpainting(dataset.image_shape, pixels, streams.masks, data.device)
    return Plain()

"""A trained model in ``advnets explore``: a run directory or a shipped model, and what the page asks of it.

Every answer is built from the library's own parts: :func:`advnets.sampling.draw` for G's images (Figures 2-3),
:func:`advnets.sampling.slerp` for spherical paths, :func:`advnets.evaluate.nearest.nearest_neighbors` for the
exact nearest training image and the distance ratio of Figure 2's memorisation check (a sample's distance to the
training set over the median distance of held-out images to it: the ratio of
:func:`advnets.evaluate.nearest.memorization_stats`, for one sample), :func:`advnets.inpaint.completions` for
§7.3's conditionals. Images travel as base64 uint8 pixels (N x H x W x C, row-major) for the page's canvas.

The run is opened once, from the directory given on the command line; no request names a file. Its checkpoint
is re-read only by :meth:`ModelSession.progress`, when the run's ``checkpoints/latest`` has moved on.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import torch

from advnets.checkpoint import latest_checkpoint
from advnets.conditioning import grid_labels, one_hot
from advnets.data import to_display
from advnets.errors import AdvnetsError, ConfigError
from advnets.evaluate.nearest import MEMORIZATION_RATIO, distance_summary, nearest_neighbors
from advnets.generators import LoadedGenerator, load_generator
from advnets.inpaint import completions
from advnets.nets import sample_noise
from advnets.runlog import read_metrics
from advnets.runs import open_run
from advnets.sampling import draw, grid_columns, slerp

__all__ = ["ModelSession", "encode_images"]

MAX_GRID, MAX_PATH, MAX_DIRECTIONS, MAX_COMPLETIONS, NEIGHBOURS = 64, 32, 8, 8, 4
#: Held-out images behind a distance ratio's denominator (their median distance to the training set).
N_HELDOUT = 200
_METRIC_KEYS = ("step", "epoch", "d_loss", "g_loss", "d_real", "d_fake")


def encode_images(images: torch.Tensor, preprocess: str = "none") -> dict[str, Any]:
    """N x C x H x W images as ``{"n", "h", "w", "c", "pixels"}``: base64 of uint8 N x H x W x C, for the page."""
    x = to_display(images.detach().float().cpu(), preprocess)
    n, c, h, w = x.shape
    raw = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy().tobytes()
    return {"n": n, "h": h, "w": w, "c": c, "pixels": base64.b64encode(raw).decode("ascii")}


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _floats(value: Any, name: str, length: int, low: float, high: float) -> torch.Tensor:
    ok = isinstance(value, list) and len(value) == length
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high for v in value)
    if not ok:
        raise ConfigError(f"{name} must be a list of {length} numbers in [{low}, {high}]")
    return torch.tensor(value, dtype=torch.float32)


class ModelSession:
    """G (and D) of one model, its training images, and the answers the page asks for."""

    def __init__(self, model: LoadedGenerator, dataset: Any, name: str, run_dir: Path | None = None) -> None:
        self._use(model)
        self.dataset, self.name, self.run_dir = dataset, name, run_dir
        self.train = dataset.train.reshape(len(dataset.train), -1)
        self._heldout_median: float | None = None
        g = self.g
        self.heldout_median()  # once, at start: the first click need not wait for it
        gen = torch.Generator().manual_seed(12345)  # the z directions: fixed, so a slider means the same each time
        q, _ = torch.linalg.qr(torch.randn(g.cfg.noise_dim, min(MAX_DIRECTIONS, g.cfg.noise_dim), generator=gen))
        self.directions = q.t().contiguous()

    @classmethod
    def from_run(cls, run_dir: Path, data: str | None = None, data_dir: Path | None = None) -> ModelSession:
        """The latest checkpoint of ``run_dir`` and its training images (the run's own data, or ``data``).

        Raises AdvnetsError (or a subclass) naming the directory when it is not a run or has no checkpoint."""
        run_dir = Path(run_dir)
        open_run(run_dir, "advnets explore")
        model = load_generator(run_dir)
        return cls(model, model.load_data(data, data_dir), run_dir.name, run_dir)

    @classmethod
    def from_pretrained(cls, name: str, data: str = "embedded", data_dir: Path | None = None) -> ModelSession:
        """A shipped model (hash checked) and ``data``'s training images (default: the embedded MNIST digits)."""
        model = load_generator(pretrained=name)
        return cls(model, model.load_data(data, data_dir), name)

    def _use(self, model: LoadedGenerator) -> None:
        """Answer from ``model`` from now on (at start, and when a training run has written a newer checkpoint)."""
        self.model, self.g, self.d, self.cfg = model, model.generator, model.discriminator, model.config
        self.image_shape, self.step, self._checkpoint = tuple(model.image_shape), model.step, model.source

    # ------------------------------------------------------------------ info

    @property
    def condition(self) -> str:
        return self.g.cfg.condition

    def info(self) -> dict[str, Any]:
        c, h, w = self.image_shape
        return {
            "name": self.name,
            "step": self.step,
            "image_shape": [c, h, w],
            "noise_dim": self.g.cfg.noise_dim,
            "condition": self.condition,
            "classes": self.g.cfg.cond_dim if self.condition == "class" else 0,
            "has_discriminator": self.d is not None,
            "directions": len(self.directions),
            "training_images": len(self.train),
            "run": self.run_dir is not None,
            "limits": {"grid": MAX_GRID, "path": MAX_PATH, "completions": MAX_COMPLETIONS},
        }

    # ----------------------------------------------------------------- drawing

    def _z(self, seed: int, n: int) -> torch.Tensor:
        _int_in(seed, "seed", 0, 2**31 - 1)
        return sample_noise(self.g.cfg, n, generator=torch.Generator().manual_seed(seed))

    def _labels(self, label: Any, n: int) -> torch.Tensor | None:
        if self.condition != "class":
            if label is not None:
                raise ConfigError("class: this model is not class-conditional")
            return None
        if label is None:
            return grid_labels(n, self.g.cfg.cond_dim, grid_columns(n))
        return torch.full((n,), _int_in(label, "class", 0, self.g.cfg.cond_dim - 1))

    def _draw(self, z: torch.Tensor, label: Any) -> torch.Tensor:
        if self.condition == "inpaint":
            raise AdvnetsError("this model completes images rather than drawing them: use the inpainting panel")
        return draw(self.g, z, self.image_shape, labels=self._labels(label, len(z))).cpu()

    def grid(self, seed: int, n: int = MAX_GRID, label: Any = None) -> dict[str, Any]:
        """``n`` samples from noise drawn with ``seed`` (as ``advnets sample --seed``), for one class or a class
        per grid row of a conditional model."""
        _int_in(n, "n", 1, MAX_GRID)
        return {"seed": seed, "images": encode_images(self._draw(self._z(seed, n), label), self.dataset.preprocess)}

    def _grid_z(self, seed: int, index: int) -> torch.Tensor:
        _int_in(index, "index", 0, MAX_GRID - 1)
        return self._z(seed, MAX_GRID)[index : index + 1]

    def path(self, seed: int, a: int, b: int, steps: int = 10, spherical: bool = False, label: Any = None) -> dict:
        """Figure 3: G along the path from grid sample ``a`` to grid sample ``b`` (linear in z, or spherical)."""
        _int_in(steps, "steps", 2, MAX_PATH)
        if not isinstance(spherical, bool):
            raise ConfigError(f"spherical must be true or false, got {spherical!r}")
        z0, z1 = self._grid_z(seed, a), self._grid_z(seed, b)
        t = torch.linspace(0, 1, steps)
        z = slerp(z0, z1, t)[0] if spherical else z0 + t[:, None] * (z1 - z0)
        z[0], z[-1] = z0[0], z1[0]
        return {"images": encode_images(self._draw(z, label), self.dataset.preprocess)}

    def move(self, seed: int, index: int, amounts: Any, label: Any = None) -> dict[str, Any]:
        """Grid sample ``index`` with its z moved by ``amounts[j]`` along fixed orthonormal direction j."""
        a = _floats(amounts, "amounts", len(self.directions), -5.0, 5.0)
        z = self._grid_z(seed, index) + a @ self.directions
        return {"images": encode_images(self._draw(z, label), self.dataset.preprocess)}

    # -------------------------------------------------------------- neighbours

    def heldout_median(self) -> float:
        """Median distance from N_HELDOUT held-out images (valid split, else test) to the nearest training image."""
        if self._heldout_median is None:
            held = self.dataset.valid if len(self.dataset.valid) else self.dataset.test
            if len(held) == 0:
                raise AdvnetsError(f"{self.dataset.name}: no held-out images for the distance ratio")
            _, dist = nearest_neighbors(
                held[:N_HELDOUT].reshape(-1, self.train.shape[1]), self.train, dtype=torch.float32
            )
            self._heldout_median = distance_summary(dist)["median"]
        return self._heldout_median

    def neighbours(self, images: torch.Tensor) -> dict[str, Any]:
        """The nearest training images of one image (1 x C x H x W) and the distance ratio of Figure 2."""
        q = images.reshape(1, -1).float()
        idx, dist = nearest_neighbors(q, self.train, dtype=torch.float32)  # exact: re-ranked in float64
        # The runners-up, for the picture only: squared distances of one query, ranked.
        order = ((self.train - q) ** 2).sum(dim=1).topk(NEIGHBOURS, largest=False).indices.tolist()
        order = [int(idx[0])] + [i for i in order if i != int(idx[0])][: NEIGHBOURS - 1]
        ratio = float(dist[0]) / self.heldout_median()
        return {
            "indices": order,
            "distance": float(dist[0]),
            "heldout_median": self.heldout_median(),
            "ratio": ratio,
            "memorised": ratio < MEMORIZATION_RATIO,
            "images": encode_images(self.dataset.train[order], self.dataset.preprocess),
        }

    def sample_neighbours(self, seed: int, index: int, label: Any = None) -> dict[str, Any]:
        """Figure 2 live: grid sample ``index``'s nearest training images."""
        image = self._draw(self._grid_z(seed, index), label)
        return {**self.neighbours(image), "sample": encode_images(image, self.dataset.preprocess)}

    def _pixels(self, pixels: Any) -> torch.Tensor:
        c, h, w = self.image_shape
        x = _floats(pixels, "pixels", h * w, 0.0, 1.0)
        return x.reshape(1, 1, h, w).expand(1, c, h, w).contiguous()

    def verdict(self, pixels: Any, label: Any = None) -> dict[str, Any]:
        """A drawn image (H*W grey values in [0, 1]): D's estimate that it is real, and its nearest training images."""
        if self.d is None:
            raise AdvnetsError(f"{self.name} ships without its discriminator: no verdict to give")
        x = self._pixels(pixels)
        rows = x.reshape(1, -1)
        cond_dim = self.cfg.discriminator.cond_dim
        if self.condition == "class":
            rows = torch.cat([rows, one_hot(torch.tensor([self._labels(label or 0, 1)[0]]), cond_dim)], dim=1)
        elif cond_dim:  # an inpainting D sees [x, M]: nothing hidden
            rows = torch.cat([rows, torch.zeros(1, cond_dim)], dim=1)
        with torch.no_grad():
            p = float(torch.sigmoid(self.d.eval()(rows).float()).reshape(-1)[0])
        return {"d_real": p, **self.neighbours(x)}

    # -------------------------------------------------------------- inpainting

    def inpaint(self, mask: Any, index: int | None = None, pixels: Any = None, k: int = 6, seed: int = 0) -> dict:
        """§7.3: ``k`` completions of test image ``index`` (or a drawn image) with the pixels of ``mask`` hidden."""
        if self.condition != "inpaint":
            raise AdvnetsError("this model was not trained for inpainting (train it with --inpaint)")
        _int_in(k, "k", 1, MAX_COMPLETIONS)
        c, h, w = self.image_shape
        if pixels is not None:
            image = self._pixels(pixels)
        else:
            image = self.dataset.test[_int_in(index, "index", 0, len(self.dataset.test) - 1)][None]
        m = _floats(mask, "mask", h * w, 0.0, 1.0).round().reshape(1, 1, h, w).expand(1, c, h, w).reshape(1, -1)
        done = completions(self.g, image, m, k, seed=_int_in(seed, "seed", 0, 2**31 - 1))
        return {
            "original": encode_images(image, self.dataset.preprocess),
            "images": encode_images(done.reshape(k, c, h, w), self.dataset.preprocess),
        }

    # ---------------------------------------------------------------- progress

    def progress(self, after: int = -1) -> dict[str, Any]:
        """A run's metrics.jsonl rows with step > ``after`` (their loss columns), reloading G and D when a newer
        checkpoint has appeared; a shipped model has none."""
        _int_in(after, "after", -1, 2**62)
        if self.run_dir is None:
            return {"rows": [], "step": self.step, "reloaded": False}
        rows = [{k: r[k] for k in _METRIC_KEYS if k in r} for r in read_metrics(self.run_dir)]
        rows = [r for r in rows if isinstance(r.get("step"), int) and r["step"] > after]
        reloaded = False
        latest = latest_checkpoint(self.run_dir)
        if latest is not None and latest != self._checkpoint:
            self._use(load_generator(self.run_dir))
            reloaded = True
        return {"rows": rows[-2000:], "step": self.step, "reloaded": reloaded}

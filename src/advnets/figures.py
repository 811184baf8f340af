"""Image grids and figures: what people look at instead of reading numbers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from advnets.io import atomic_write_bytes


def image_grid(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile N x C x H x W images in [0, 1] into one uint8 H' x W' (x 3) array,
    ``nrow`` images per row, separated by ``padding`` pixels of ``pad_value``."""
    if images.ndim != 4:
        raise ValueError(f"image_grid expects N x C x H x W, got shape {tuple(images.shape)}")
    x = images.detach().to("cpu", torch.float32).clamp(0, 1)
    n, c, h, w = x.shape
    ncol = max(1, nrow)
    nrows = -(-n // ncol)
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    arr = (grid * 255 + 0.5).to(torch.uint8).numpy()
    return arr[0] if c == 1 else arr.transpose(1, 2, 0)


#: The bar between Figure 2's samples and its column of nearest training examples: matplotlib's "tab:red",
#: a colour no greyscale sample has, so that no reader takes a training image for a sample.
SEPARATOR_RGB = (214, 39, 40)


def nearest_grid(images: torch.Tensor, columns: int, padding: int = 2) -> np.ndarray:
    """Figure 2's picture: :func:`image_grid` of N x C x H x W images in [0, 1], ``columns`` per row, the
    rightmost column the nearest training examples (:func:`advnets.sampling.nearest_figure`), and the gap before
    that column filled with :data:`SEPARATOR_RGB` from top to bottom. Returns an H' x W' x 3 uint8 array (RGB
    even for grey images, for the colour of the bar).

    The paper's Figure 2 marks its training examples with a yellow outline; a bar the height of the figure says
    the same with one mark."""
    if columns < 2:
        raise ValueError(f"nearest_grid needs a sample column and a neighbour column, got columns={columns}")
    grid = image_grid(images, columns, padding)
    if grid.ndim == 2:
        grid = np.repeat(grid[..., None], 3, axis=2)
    width = images.shape[-1]
    left = (columns - 1) * (width + padding)  # the gap just before the rightmost column
    grid[:, left : left + max(1, padding)] = SEPARATOR_RGB
    return grid


def png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images: torch.Tensor, path: Path, nrow: int, scale: int = 1) -> Path:
    """Write a PNG grid atomically (never a half-written image under ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png_bytes(image_grid(images, nrow), scale=scale))
    return path


def new_figure(width: float, height: float, layout: str | None = None) -> Any:
    """A matplotlib Figure on the Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_figure(fig: Any, path: Path | str) -> Path:
    """Write a matplotlib figure as a PNG atomically (never a half-written image under ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, figure_png(fig))
    return path

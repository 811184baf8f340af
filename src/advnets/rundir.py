"""A run is a directory (StyleGAN2-ADA's habit):

runs/00001-mnist-embedded/
  config.json        the fully resolved RunConfig
  metrics.jsonl      one JSON object per logged step, append-only
  events.out.tfevents.*   TensorBoard: the same scalars and sample grids
  samples/step-NNNNNNNN.png   grids from one fixed noise batch
  checkpoints/step-NNNNNNNN.pt (+ .sha256) and checkpoints/latest
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from advnets.checkpoint import atomic_write_bytes
from advnets.config import RunConfig, to_dict

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
_NUMBERED = re.compile(r"^(\d{5})-")


def new_run_dir(root: Path, name: str) -> Path:
    """Create ``root/NNNNN-name`` with the next free number."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _NUMBERED.match(p.name))]
    nxt = max(numbers, default=0) + 1
    while True:
        path = root / f"{nxt:05d}-{name}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took this number
            nxt += 1


def atomic_write_json(path: Path, doc: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(doc, indent=2) + "\n").encode())


def write_config(run_dir: Path, cfg: RunConfig, extra: dict[str, Any] | None = None) -> None:
    atomic_write_json(Path(run_dir) / CONFIG_FILE, {**to_dict(cfg), **(extra or {})})


def read_config_json(run_dir: Path) -> dict[str, Any]:
    """config.json of a run as a plain dict ({} when missing or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of metrics.jsonl (a torn last line from a killed process is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class MetricsLog:
    """Append-only metrics.jsonl plus the same scalars in TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self._file = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir))

    def log(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = row["step"]
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def image(self, tag: str, hwc_or_hw, step: int) -> None:
        if self._tb is not None:
            fmt = "HW" if hwc_or_hw.ndim == 2 else "HWC"
            self._tb.add_image(tag, hwc_or_hw, step, dataformats=fmt)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

"""A generator ready to sample, from a run, a checkpoint or a shipped model: one type, one loader.

:func:`load_generator` reads any of the three and returns a :class:`LoadedGenerator`: G (and D
where the source holds it) rebuilt from the stored configuration (never unpickled) in eval mode,
with what the consumers need to label, sample and score it (the step, the epoch, the image
shape, the dataset it was trained on). Every command that uses a trained model (``sample``,
``evaluate``, ``classes``, ``inpaint``, ``infer``, ``semisup``, ``report``) and the library's
scoring functions load through it, so every source gets the same checks:

- a run directory means its latest complete checkpoint (the ``latest`` pointer is swapped only
  after a checkpoint is whole, so a run that is still training can be read);
- a checkpoint is verified against its SHA-256 and read with ``weights_only=True``
  (:func:`advnets.checkpoint.load_checkpoint`);
- a shipped model is verified against the hash pinned in :data:`advnets.pretrained.REGISTRY`
  before its bytes are parsed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advnets.checkpoint import checkpoint_config, load_checkpoint, nonfinite_weights, resolve_checkpoint
from advnets.config import RunConfig, override
from advnets.errors import CheckpointError, ConfigError, DataError
from advnets.nets import Discriminator, Generator, build_nets
from advnets.pretrained import FORMAT, PretrainedModel, get_entry

__all__ = ["LoadedGenerator", "load_generator"]

_PARTS = ("generator", "discriminator")


@dataclass(frozen=True)
class LoadedGenerator:
    """G ready to sample (eval mode), D when the source holds it, and what they came from.

    Attributes:
        generator: G, in eval mode, on the device it was loaded to.
        discriminator: D in eval mode, or None (a shipped file may hold G only).
        config: the run's full configuration (``config.data`` says how its data were read).
        image_shape: ``(C, H, W)`` of G's images.
        step: the training step the weights are from (0 when a shipped file does not say).
        epoch: epochs trained: completed passes plus the fraction of the current one.
        label: the model's row name in a table: ``"adversarial nets (step N)"``, or a shipped model's name.
        source: the file read: a checkpoint (``.pt``) or a shipped ``.safetensors``.
        run_dir: the run directory that holds ``source``, or None (a shipped model, a loose checkpoint).
        version: the advnets version that wrote ``source`` ("" when unknown).
        dataset: the dataset name recorded with the weights ("" when unknown).
        metadata: a shipped file's metadata (JSON strings); {} for a checkpoint.
    """

    generator: Generator
    discriminator: Discriminator | None
    config: RunConfig
    image_shape: tuple[int, ...]
    step: int
    epoch: float
    label: str
    source: Path
    run_dir: Path | None = None
    version: str = ""
    dataset: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def sample(self, n: int, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` samples of G as an ``N x C x H x W`` CPU tensor from noise drawn with ``seed``
        (:func:`advnets.sampling.generate`: the same seed gives the same images on every machine)."""
        from advnets.sampling import generate

        return generate(self.generator, n, seed, self.image_shape, labels=labels)

    def load_data(self, source: str | Path | None = None, data_dir: str | Path | None = None) -> Any:
        """The dataset the model was trained on, read with its own data settings (split, preprocessing);
        ``source`` (a ``--data`` value) reads other files with the same settings, e.g. the MNIST IDX folder
        for a shipped model.

        Raises:
            DataError: the data cannot be read, or its images do not have the model's shape.
        """
        from advnets.data import load_dataset

        cfg = self.config.data if source is None else override(self.config.data, source=str(source))
        data = load_dataset(cfg, data_dir=data_dir)
        if tuple(data.image_shape) != tuple(self.image_shape):
            where = f"--data {source}" if source is not None else f"the data of {self.source}"
            raise DataError(
                f"{where}: images of shape {tuple(data.image_shape)}, but {self.source.name} draws "
                f"{tuple(self.image_shape)}"
            )
        return data


def load_generator(
    source: str | Path | None = None,
    *,
    pretrained: str | None = None,
    map_location: str | torch.device = "cpu",
    option: str = "--run",
    registry: dict[str, PretrainedModel] | None = None,
    assets_dir: Path | None = None,
) -> LoadedGenerator:
    """Load a generator from a run directory, a checkpoint file, a shipped ``.safetensors`` file, or a
    shipped model by name (``pretrained``; one of ``source`` and ``pretrained``).

    Args:
        source: a run directory (its latest checkpoint), a ``step-*.pt`` checkpoint, the run's
            ``checkpoints/`` folder or ``latest`` pointer, or a file made by
            :func:`advnets.pretrained.export_pretrained`.
        pretrained: a name in :data:`advnets.pretrained.REGISTRY` (``registry`` and ``assets_dir``
            replace the shipped registry and folder, for tests and for models of your own).
        map_location: the device to put the nets on.
        option: the flag that named ``source``, for the messages.

    Raises:
        CheckpointError: no such run or file, a run without a checkpoint yet, a corrupt, substituted or
            foreign file, or weights that do not fit their configuration.
        AdvnetsError: an unknown ``pretrained`` name (the message lists the known ones).
    """
    if (source is None) == (pretrained is None):
        raise ConfigError("load_generator: give one of a run/checkpoint/file and a pretrained model name")
    if pretrained is not None:
        entry = get_entry(pretrained, registry)
        return _from_safetensors(entry.path(assets_dir), entry.sha256, map_location, label=entry.name)
    path = Path(source)
    if path.is_file() and path.suffix == ".safetensors":
        return _from_safetensors(path, None, map_location, label=path.stem)
    return _from_checkpoint(resolve_checkpoint(path, option), map_location)


def _epoch(state: dict[str, Any], batch_size: int) -> float:
    """Epochs a checkpoint had trained: completed passes plus the fraction of the current one."""
    per_epoch = len(state["perm"]) // batch_size if "perm" in state else 0
    return int(state.get("epoch", 0)) + (int(state.get("batch_in_epoch", 0)) / per_epoch if per_epoch else 0.0)


def _from_checkpoint(path: Path, map_location: str | torch.device) -> LoadedGenerator:
    state = load_checkpoint(path, map_location=map_location)  # refuses non-finite weights, naming the tensor
    cfg = checkpoint_config(state["config"], state.get("version"), f"checkpoint {path}")
    shape = tuple(int(n) for n in state["image_shape"])
    g, d = build_nets(cfg.generator, cfg.discriminator, shape)
    g.load_state_dict(state["generator"])
    d.load_state_dict(state["discriminator"])
    step = int(state["step"])
    inside_run = path.parent.name == "checkpoints"
    return LoadedGenerator(
        generator=g.to(map_location).eval(),
        discriminator=d.to(map_location).eval(),
        config=cfg,
        image_shape=shape,
        step=step,
        epoch=_epoch(state, cfg.train.batch_size),
        label=f"adversarial nets (step {step})",
        source=path,
        run_dir=path.parent.parent if inside_run else None,
        version=str(state.get("version", "")),
        dataset=str(state.get("dataset", "")),
    )


def _metadata(path: Path, data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (8-byte little-endian header length, then JSON)."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        meta = header.get("__metadata__") or {}
    except (struct.error, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: not a safetensors file ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected a file made by advnets.pretrained (format {FORMAT!r})")
    return meta


def _read_verified(path: Path, sha256: str | None) -> bytes:
    if not path.is_file():
        raise CheckpointError(
            f"{path}: pretrained model file is missing"
            + (f" (expected a file with SHA-256 {sha256}); reinstall advnets" if sha256 else "")
        )
    data = path.read_bytes()
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256.lower():
            raise CheckpointError(
                f"{path}: damaged or substituted pretrained model: its SHA-256 is {got}, expected {sha256} "
                f"({len(data)} bytes); reinstall advnets"
            )
    return data


def _from_safetensors(path: Path, sha256: str | None, map_location: str | torch.device, label: str) -> LoadedGenerator:
    """A file made by :func:`advnets.pretrained.export_pretrained`, its SHA-256 checked first when given."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = _read_verified(Path(path), sha256)
    meta = _metadata(path, data)
    try:
        cfg = checkpoint_config(json.loads(meta["config"]), meta.get("advnets_version"), str(path))
        shape = tuple(int(n) for n in json.loads(meta["image_shape"]))
        tensors = load(data)
        tensors.update({alias: tensors[name] for alias, name in json.loads(meta.get("aliases", "{}")).items()})
    except (KeyError, ValueError, ConfigError, SafetensorError) as e:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: cannot rebuild the nets: {type(e).__name__}: {e}") from None
    g, d = build_nets(cfg.generator, cfg.discriminator, shape)
    nets: dict[str, Any] = {"generator": g, "discriminator": d}
    present = {key.split(".", 1)[0] for key in tensors}
    if "generator" not in present:
        raise CheckpointError(f"{path}: holds no generator.* tensors")
    parts = {part: {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(part + ".")} for part in present}
    bad = nonfinite_weights({part: parts.get(part) for part in _PARTS}, str(path))
    if bad:
        raise CheckpointError(f"{path} holds non-finite weights ({bad}): refused")
    for part in _PARTS:
        if part not in present:
            nets[part] = None
            continue
        try:
            nets[part].load_state_dict(parts[part])
        except RuntimeError as e:  # missing / unexpected keys or wrong shapes
            raise CheckpointError(f"{path}: {part} tensors do not fit its config: {str(e).splitlines()[0]}") from None
        nets[part] = nets[part].to(map_location).eval()
    return LoadedGenerator(
        generator=nets["generator"],
        discriminator=nets["discriminator"],
        config=cfg,
        image_shape=shape,
        step=int(meta.get("step", 0)),
        epoch=float(meta.get("epoch", 0)),
        label=label,
        source=Path(path),
        version=str(meta.get("advnets_version", "")),
        dataset=str(meta.get("dataset", "")),
        metadata=dict(meta),
    )

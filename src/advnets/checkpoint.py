"""Checkpoints that are written atomically and loaded without trusting them.

A checkpoint is a ``torch.save`` of plain containers (state dicts, the config
as a dict, counters, RNG state tensors, the package version): nothing in it
names a class to import, and it is read back with ``weights_only=True``. G and
D are rebuilt from the stored config, never unpickled as objects.

Writes go to a temporary file in the same directory, are flushed and fsynced,
then ``os.replace``d into place; the ``latest`` pointer is swapped the same
way, only after the checkpoint is complete, and a ``.sha256`` beside each
checkpoint is verified on load.

Non-finite weights never pass through here: a G or D holding a NaN or an
infinity is refused when a checkpoint is written and when one is read (every
command and the Python loaders read through :func:`load_checkpoint`), naming
the tensor and the file. A checkpoint whose config this advnets cannot read
says which version wrote it, and to upgrade when that one is newer.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from advnets import __version__
from advnets.config import RunConfig, from_dict
from advnets.errors import AdvnetsError, CheckpointError, ConfigError
from advnets.io import atomic_write_bytes, write_failure

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
BEST = "best"  # checkpoints/best: a file naming the checkpoint of the best validation check (train.validation)
CONFIG_FILE = "config.json"  # a run's resolved configuration (advnets.runs writes it)
NETS = {"generator": "G", "discriminator": "D"}  # the state-dict keys of the two nets, and their names in messages
_NAME = re.compile(r"^step-\d{8}\.pt$")


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Save ``state`` as ``checkpoints/step-NNNNNNNN.pt`` and point ``latest`` at it."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_dir.glob(".*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    path = ckpt_dir / f"step-{state['step']:08d}.pt"
    bad = nonfinite_weights(state)  # the divergence guard stops training first; this is the last line
    if bad:
        raise CheckpointError(f"refusing to write checkpoint {path}: {bad}; the previous checkpoint is intact")
    buf = io.BytesIO()
    torch.save({**state, "version": __version__}, buf)
    data = buf.getvalue()
    digest = path.with_suffix(".sha256")
    try:
        atomic_write_bytes(path, data)
        atomic_write_bytes(digest, (hashlib.sha256(data).hexdigest() + "\n").encode())
        atomic_write_bytes(ckpt_dir / LATEST, (path.name + "\n").encode())
    except OSError as e:
        # `latest` still names the previous checkpoint; drop the orphaned pieces
        # of this one (unless latest already points at it).
        if latest_checkpoint(run_dir) != path:
            path.unlink(missing_ok=True)
            digest.unlink(missing_ok=True)
        raise CheckpointError(f"{write_failure(path, e, 'checkpoint')}; the previous checkpoint is intact") from e
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint that ``latest`` names, or None when the run has none."""
    pointer = Path(run_dir) / CHECKPOINT_DIR / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not _NAME.match(name):
        raise CheckpointError(f"{pointer}: expected a checkpoint name like step-00001000.pt, got {name!r}")
    return pointer.parent / name


def newest_at_or_before(run_dir: Path, step: int) -> Path | None:
    """The newest checkpoint of a run saved at or before ``step``, or None if there is none."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    candidates = sorted(p for p in ckpt_dir.glob("step-*.pt") if _NAME.match(p.name) and int(p.name[5:13]) <= step)
    return candidates[-1] if candidates else None


def point_latest_at_or_before(run_dir: Path, step: int) -> Path | None:
    """Point ``latest`` at the newest checkpoint saved at or before ``step``
    (e.g. the last one before a collapse); returns it, or None if there is none."""
    found = newest_at_or_before(run_dir, step)
    if found is not None:
        atomic_write_bytes(Path(run_dir) / CHECKPOINT_DIR / LATEST, (found.name + "\n").encode())
    return found


def _named_by(pointer: Path) -> str | None:
    """The checkpoint name a pointer file (``latest``, ``best``) holds, or None when it is missing or unreadable."""
    try:
        name = pointer.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if _NAME.match(name) else None


def prune_checkpoints(run_dir: Path, keep: int, protect: tuple[str, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints of a run (each ``.pt`` and then its ``.sha256``); returns
    the deleted ``.pt`` paths, oldest first. ``keep`` 0 deletes nothing.

    "Newest" counts the checkpoints at or before the step of the one ``latest`` names (called after a save, so
    after ``latest`` points at a complete newer checkpoint): those after it belong to an attempt that ``latest``
    was moved back from (``--on-collapse stop``, or by hand past a corrupt file); they are left alone, and the
    run overwrites them as it passes their steps. Never deleted: the checkpoints ``latest`` and ``best`` name
    and those named in ``protect`` (a branch's first checkpoint). Nothing is deleted while ``latest`` is
    missing or unreadable. A ``.sha256`` whose ``.pt`` is gone (a kill between the two unlinks) goes too.

    Raises:
        OSError: a file could not be deleted (what was deleted before it stays deleted).
    """
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    latest = _named_by(ckpt_dir / LATEST)
    if keep <= 0 or latest is None:
        return []
    kept = {latest, _named_by(ckpt_dir / BEST), *protect}
    now = int(latest[5:13])
    past = sorted(p for p in ckpt_dir.glob("step-*.pt") if _NAME.match(p.name) and int(p.name[5:13]) <= now)
    doomed = [p for p in past[:-keep] if p.name not in kept]
    for path in doomed:
        path.unlink(missing_ok=True)  # the .pt first: a .sha256 alone is never read as a checkpoint
        path.with_suffix(".sha256").unlink(missing_ok=True)
    for digest in ckpt_dir.glob("step-*.sha256"):
        pt = digest.with_suffix(".pt")
        if not pt.exists() and _NAME.match(pt.name) and int(pt.name[5:13]) <= now:
            digest.unlink(missing_ok=True)
    return doomed


def _instead(corrupt: Path) -> str:
    """What to do about a corrupt checkpoint: the newest earlier one in its folder, and how to use it."""
    earlier = sorted(p for p in corrupt.parent.glob("step-*.pt") if _NAME.match(p.name) and p.name < corrupt.name)
    if not earlier:
        return "there is no earlier checkpoint in its folder"
    latest = corrupt.parent / LATEST
    return f"the newest earlier one is {earlier[-1].name}: give it as --run, or write its name into {latest} to resume"


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely: verify its SHA-256, then ``weights_only=True``; then check its config
    (:func:`checkpoint_config`) and that G's and D's weights are finite (:func:`nonfinite_weights`).

    Raises:
        CheckpointError: missing, corrupt or foreign file; a config this advnets cannot read (naming the
            version that wrote it); a NaN or infinity in G or D (naming each tensor and the file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".sha256":  # the checksum beside a checkpoint: checked against itself it would read as corrupt
        raise CheckpointError(
            f"{path} is not an advnets checkpoint (expected a step-*.pt file; this is the SHA-256 beside one)"
        )
    data = path.read_bytes()
    digest_file = path.with_suffix(".sha256")
    if digest_file.is_file():
        expected = digest_file.read_text().strip()
        if hashlib.sha256(data).hexdigest() != expected:
            raise CheckpointError(
                f"checkpoint {path} is corrupt (its SHA-256 does not match {digest_file.name}); {_instead(path)}"
            )
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        if not zipfile.is_zipfile(io.BytesIO(data)):  # not a torch.save file at all (a .json, a .npy, ...)
            raise CheckpointError(f"{path} is not an advnets checkpoint (not a file that torch.save wrote)") from e
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"cannot load checkpoint {path}: {type(e).__name__}: {first}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an advnets checkpoint (it holds a {type(state).__name__}, not a dict)")
    missing = {"generator", "discriminator", "config", "step"} - set(state)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(sorted(missing))}")
    checkpoint_config(state["config"], state.get("version"), f"checkpoint {path}")
    bad = nonfinite_weights(state, f"checkpoint {path}")
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights ({bad}): refused; {_instead(path)}")
    return state


def nonfinite_weights(state: dict[str, Any], source: str = "checkpoint") -> str:
    """What is not finite in the nets of ``state`` (``state["generator"]`` and ``state["discriminator"]``,
    state dicts of tensors), as ``"G: layers.0.weight holds 3 NaN values; D: output.bias holds 1 infinite
    value"``, or "" when every floating-point tensor is finite. A tensor registered under two names (G's output
    layer) is named once. One host sync when all is well; counts only when something is not. ``source`` names
    the file in the one error.

    Raises:
        CheckpointError: a net's entry is not a dict of tensors (a damaged or foreign file).
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple] = set()
    for key, net in NETS.items():
        sd = state.get(key)
        if sd is None:  # a pretrained file without D
            continue
        if not isinstance(sd, dict) or not all(isinstance(t, torch.Tensor) for t in sd.values()):
            raise CheckpointError(f"{source}: {key}: expected a state dict of tensors, got {type(sd).__name__}")
        for name, t in sd.items():
            ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())
            if t.is_floating_point() and t.numel() and ident not in seen:
                seen.add(ident)
                tensors[f"{net}: {name}"] = t
    flags = [torch.isfinite(t).all() for t in tensors.values()]
    if not flags or bool(torch.stack([f.to(flags[0].device) for f in flags]).all()):
        return ""
    said = []
    for name, t in tensors.items():
        nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
        kinds = [f"{n} {what} value{'s' if n != 1 else ''}" for n, what in ((nan, "NaN"), (inf, "infinite")) if n]
        if kinds:
            said.append(f"{name} holds {' and '.join(kinds)}")
    return "; ".join(said)


def _newer(version: Any) -> bool:
    """Whether ``version`` (a checkpoint's ``version`` field) is a later advnets than this one."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(str(version)) > Version(__version__)
    except InvalidVersion:
        return False


def checkpoint_config(config: Any, version: Any, source: str) -> RunConfig:
    """The RunConfig stored in a checkpoint (or a pretrained file) written by advnets ``version``;
    ``source`` names it in messages ("checkpoint runs/x/checkpoints/step-00000100.pt").

    Raises:
        CheckpointError: the config does not fit this advnets. When ``version`` is newer than this
            one (a field it added, e.g. ``ema_decay``), the message names both versions and says to
            upgrade; otherwise it names the unknown or wrong field and the version that wrote it.
    """
    try:
        return from_dict(RunConfig, config)
    except ConfigError as e:
        if _newer(version):
            raise CheckpointError(
                f"{source} was written by advnets {version}, newer than this advnets {__version__}, and its config "
                f"has settings this version does not know ({e}); upgrade advnets (pip install --upgrade advnets) "
                "to load it"
            ) from None
        written = f"written by advnets {version}" if version else "written by an unknown advnets version"
        raise CheckpointError(
            f"{source}: its config does not fit this advnets {__version__} ({written}): {e}"
        ) from None


def resolve_checkpoint(run: Path, option: str = "--run") -> Path:
    """A run directory (its latest checkpoint) or a checkpoint file; ``option`` is the flag that
    named ``run``, for the messages (``--run`` for sample, evaluate, ...; ``--out`` for train).

    Raises:
        CheckpointError: ``run`` is neither, or a run without a checkpoint yet. A run's ``checkpoints/``
            folder or its ``latest`` pointer file mean the checkpoint ``latest`` names."""
    run = Path(run)
    if run.is_file() and run.name == LATEST and run.parent.name == CHECKPOINT_DIR:
        run = run.parent.parent  # the pointer file: the checkpoint it names
    elif run.is_file():
        return run
    if run.name == CHECKPOINT_DIR and (run / LATEST).is_file():
        run = run.parent  # a run's checkpoints/ folder: its latest checkpoint
    require_run(run, option)
    path = latest_checkpoint(run)
    if path is None:
        raise CheckpointError(f"{option} {run}: no checkpoint yet (expected {run / CHECKPOINT_DIR / LATEST})")
    return path


def require_run(run: Path, option: str = "--run", expected: str = "a run directory or a checkpoint file") -> None:
    """Check that the directory ``run`` is a run: it holds a config.json or a ``checkpoints/latest``
    (it may have no checkpoint yet). The one place that says so, so every command given a folder
    that is not a run (sample, evaluate, report, classes, infer, inpaint, semisup, train --branch-from
    and --resume) says the same; ``expected`` ends the message with what the command takes.

    Raises:
        CheckpointError: ``run`` does not exist, or is a directory that holds no run.
    """
    run = Path(run)
    if not run.is_dir():
        raise CheckpointError(f"{option} {run}: no such run directory or checkpoint file")
    if not (run / CONFIG_FILE).is_file() and not (run / CHECKPOINT_DIR / LATEST).is_file():
        raise not_a_run(run, option, expected)


def not_a_run(run: Path, option: str = "--run", expected: str = "a run directory or a checkpoint file") -> AdvnetsError:
    """The error for a directory ``run`` that holds no run (see :func:`require_run`)."""
    run = Path(run)
    hint = f" (did you mean {run.parent}?)" if (run.parent / CONFIG_FILE).is_file() else ""
    return CheckpointError(
        f"{option} {run} is not an advnets run: it has neither {CONFIG_FILE} nor {CHECKPOINT_DIR}/{LATEST}{hint}; "
        f"expected {expected}"
    )

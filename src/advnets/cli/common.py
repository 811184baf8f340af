"""What the command modules share: the parser class, argument types, common options, .npy input."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from advnets.config import SEED_MAX
from advnets.errors import AdvnetsError, DataError

FORMATTER = argparse.RawDescriptionHelpFormatter  # keeps the examples in the epilogs as written
DATA_DIR_HELP = "where named datasets (mnist, cifar10, tfd) live (default: $ADVNETS_DATA or ~/.cache/advnets)"


class Parser(argparse.ArgumentParser):
    """argparse that prints one line (not the whole usage) before exiting 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_command(sub: argparse._SubParsersAction, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser, its help formatted as written (examples keep their lines).

    It also accepts ``--debug`` (listed once, in ``advnets --help``), so that ``advnets train ... --debug``
    works as well as ``advnets --debug train ...``; SUPPRESS leaves the top level's value alone when it is absent.
    """
    parser = sub.add_parser(name, formatter_class=FORMATTER, **kwargs)
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def add_run(p: argparse.ArgumentParser, help: str = "run directory or checkpoint file") -> None:
    p.add_argument("--run", type=Path, required=True, metavar="DIR", help=help)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help=DATA_DIR_HELP)


PRETRAINED_OUTPUTS = "pretrained-outputs"
# The --help text of that place; FILE is the file's name there.
PRETRAINED_OUT_HELP = (
    "--pretrained NAME: DATA_ROOT/pretrained-outputs/NAME/{}, DATA_ROOT being --data-dir, $ADVNETS_DATA or "
    "~/.cache/advnets; never the current directory"
)


def pretrained_outputs(name: str, data_dir: str | Path | None) -> Path:
    """Where ``--pretrained NAME`` writes what it makes when ``--out`` does not say:
    ``<data root>/pretrained-outputs/NAME`` (``~/.cache/advnets/pretrained-outputs/NAME`` by default), one
    folder per shipped model as a run has its own. Never the current directory, which may be a source tree
    or a read-only mount, and where a second model's figure would overwrite the first's.

    Raises:
        AdvnetsError: ``name`` is not a shipped model (so no folder is made for a mistyped one).
    """
    from advnets.data.fetch import data_root
    from advnets.pretrained import get_entry

    get_entry(name)
    return data_root(data_dir) / PRETRAINED_OUTPUTS / name


def _number_type(convert, ok, expected: str, name: str):
    """An argparse ``type=``: ``convert(text)`` when that works and ``ok`` holds, else a message saying
    what was ``expected``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = name
    return parse


positive_int = _number_type(int, lambda v: v >= 1, "a positive integer", "positive_int")
nonneg_int = _number_type(int, lambda v: v >= 0, "an integer >= 0", "nonneg_int")
nonneg_float = _number_type(float, lambda v: v >= 0 and math.isfinite(v), "a finite number >= 0", "nonneg_float")
positive_float = _number_type(float, lambda v: v > 0 and math.isfinite(v), "a positive number", "positive_float")
decay_factor = _number_type(float, lambda v: v >= 1 and math.isfinite(v), "a factor >= 1", "decay_factor")
# A picture of more images than this is no longer something to look at, and a million of them took 20 GB
# before the kernel killed the process; more samples than this: advnets.sampling.generate.
MAX_FIGURE_IMAGES = 10_000
figure_count = _number_type(
    int, lambda v: 1 <= v <= MAX_FIGURE_IMAGES, f"a number of images from 1 to {MAX_FIGURE_IMAGES:,}", "figure_count"
)
seed_int = _number_type(int, lambda v: 0 <= v <= SEED_MAX, f"a seed: an integer from 0 to {SEED_MAX}", "seed_int")


def positive_int_list(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def check_png(out: Path) -> Path:
    """``--out`` of a command that writes a PNG image."""
    if out.suffix.lower() != ".png":
        raise AdvnetsError(f"--out {out}: expected a .png file name")
    check_output_path(out, "--out")
    return out


def load_array(path: Path | None, option: str):
    """An N x d float64 array from the .npy file given to ``option`` (images flattened).

    Raises:
        AdvnetsError: no file given (``option`` is required with --samples).
        DataError: the file is missing, not a .npy array, or holds no images.
    """
    import numpy as np

    if path is None:
        raise AdvnetsError(f"{option} is required with --samples")
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{option} {path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{option} {path}: is a directory; expected a .npy file") from None
    except (ValueError, OSError, EOFError) as e:  # EOFError: an empty file
        if not isinstance(e, EOFError) and not _starts_like_npy(path):  # np.load tried it as a pickle
            raise DataError(f"{option} {path}: not a .npy file (expected an array saved by numpy.save)") from None
        why = "an empty file" if isinstance(e, EOFError) else "pickled objects" if "pickle" in str(e) else str(e)
        raise DataError(f"{option} {path}: not a readable .npy array ({why})") from None
    if not isinstance(array, np.ndarray):  # np.load opens .npz archives as NpzFile
        array.close()
        raise DataError(f"{option} {path}: an .npz archive; expected one .npy array (np.save)")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{option} {path}: expected real numbers, got dtype {array.dtype}")
    if array.ndim < 2 or array.shape[0] == 0:
        raise DataError(f"{option} {path}: expected N x d or N x H x W[x C] with N >= 1, got shape {array.shape}")
    return array.reshape(len(array), -1).astype(np.float64)


def _starts_like_npy(path: Path) -> bool:
    """Whether the file begins with numpy's .npy magic (``\\x93NUMPY``); np.load reads anything else that is
    not a .npz archive as a pickle, so a PNG or a text file would otherwise be reported as pickled objects."""
    from numpy.lib.format import MAGIC_PREFIX

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC_PREFIX)) == MAGIC_PREFIX
    except OSError:
        return True  # unreadable: np.load's own error says why


def check_output_path(path: Path | None, option: str) -> None:
    """Refuse, before any work, an output path that cannot become a file: an existing directory, or a
    parent that is a file.

    Raises:
        AdvnetsError: naming ``option`` and the path.
    """
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise AdvnetsError(f"{option} {path}: is a directory; expected a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise AdvnetsError(f"{option} {path}: {parent} is a file, not a directory")
            break

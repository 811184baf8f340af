"""Train the shipped digit feature network (advnets.evaluate.digit_features) on full MNIST.

Usage (one CPU thread, a few minutes):
    OMP_NUM_THREADS=1 python scripts/train_digit_features.py --data mnist

Trains advnets' DigitClassifier on all 60,000 MNIST training images with the
classifier module's own recipe (seed 0, EPOCHS passes), reports its accuracy
on the 10,000 test images (t10k; must be at least 99 %) and on the test splits
of the two datasets the package embeds, and writes the weights atomically as
safetensors (default: src/advnets/assets/digit_features.safetensors). Print
the SHA-256 and accuracy; pin them in digit_features.py (SHA256,
TEST_ACCURACY). On the CPU with one thread the run is deterministic: the same
seed gives the same weights, so the same SHA-256.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported: the machine is shared

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from advnets.data import Dataset, load_dataset  # noqa: E402
from advnets.data.idx import load_idx_dataset  # noqa: E402
from advnets.errors import AdvnetsError  # noqa: E402
from advnets.evaluate import digit_features as df  # noqa: E402
from advnets.evaluate.classifier import train_digit_classifier  # noqa: E402
from advnets.io import atomic_write_bytes  # noqa: E402

MIN_ACCURACY = 0.99


def full_mnist(directory: Path) -> Dataset:
    """All 60,000 training images as train (no validation split), the 10,000 t10k images as test."""
    splits = load_idx_dataset(directory, valid_size=0)
    t = {k: (torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)) for k, (x, y) in splits.items()}
    (xtr, ytr), (xva, yva), (xte, yte) = t["train"], t["valid"], t["test"]
    return Dataset("mnist-full", xtr, xva, xte, ytr, yva, yte)


def serialize(state: dict[str, torch.Tensor], meta: dict) -> bytes:
    """safetensors bytes that depend only on the tensors and ``meta``: the metadata is one JSON string with
    sorted keys, because safetensors writes a metadata dict of several keys in hash order (differing runs)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return save(tensors, metadata={"advnets": json.dumps(meta, sort_keys=True)})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="directory of the four MNIST IDX files")
    p.add_argument("--out", type=Path, default=df.WEIGHTS_FILE, help=f"weights file (default {df.WEIGHTS_FILE})")
    p.add_argument("--epochs", type=int, default=df.EPOCHS, help=f"passes over the training set (default {df.EPOCHS})")
    p.add_argument("--seed", type=int, default=0, help="initialisation and minibatch order (default 0)")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    data = full_mnist(args.data)
    print(f"training on {len(data.train)} MNIST images, {args.epochs} epochs, seed {args.seed}", flush=True)
    start = time.perf_counter()
    model = train_digit_classifier(data, seed=args.seed, epochs=args.epochs)
    seconds = time.perf_counter() - start
    acc = model.test_accuracy
    print(f"test accuracy on the {len(data.test)} t10k images: {acc:.4f} ({seconds:.0f} s)")
    if acc < MIN_ACCURACY:
        print(f"accuracy below {MIN_ACCURACY}: not writing {args.out}", file=sys.stderr)
        return 1
    for name in ("embedded", "embedded-digits"):
        emb = load_dataset(name)
        x = df.preprocess_digits(emb.test)
        acc_emb = model.accuracy(x, emb.test_labels)
        # embedded-mnist holds MNIST *training* digits (seen in training here); the 8x8 digits are another dataset.
        print(f"accuracy on the {emb.name} test split ({len(x)} images): {acc_emb:.4f}")

    blob = serialize(
        model.state_dict(),
        {"data": "MNIST train 60k", "epochs": args.epochs, "seed": args.seed, "test_accuracy": round(acc, 4)},
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, blob)
    print(f"wrote {args.out}: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AdvnetsError as e:
        print(f"train_digit_features: {e}", file=sys.stderr)
        sys.exit(2)

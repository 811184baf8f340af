"""The pretrained models shipped inside the package (issue 15): each REGISTRY entry's file is in the
package, has the pinned size and SHA-256, rebuilds G (and D) from its own config, draws the same
samples for the same seed, and a damaged copy is refused naming the file.

The number an entry states (the reference protocol on full MNIST) needs the full MNIST files, which
tests never read; `advnets evaluate --pretrained NAME --data DIR` reproduces it (docs/table1.md).
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from advnets.errors import CheckpointError
from advnets.generators import load_generator
from advnets.pretrained import ASSETS_DIR, REGISTRY
from advnets.sampling import generate

ENTRIES = sorted(REGISTRY.values(), key=lambda e: e.name)


def test_the_paper_recipe_model_is_shipped():
    assert "mnist-paper" in REGISTRY
    entry = REGISTRY["mnist-paper"]
    assert entry.preset == "mnist" and entry.dataset == "mnist"
    assert entry.parzen_se > 0 and 0.1 <= entry.sigma <= 1.0


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_the_shipped_file_has_its_pinned_size_and_hash(entry):
    data = entry.path().read_bytes()
    assert len(data) == entry.size_bytes
    assert hashlib.sha256(data).hexdigest() == entry.sha256


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_the_shipped_model_rebuilds_and_samples_deterministically(entry):
    model = load_generator(pretrained=entry.name)
    assert model.config.preset == entry.preset
    assert tuple(model.image_shape) == (1, 28, 28)
    a = generate(model.generator, 16, entry.sample_seed, model.image_shape)
    b = generate(load_generator(pretrained=entry.name).generator, 16, entry.sample_seed, model.image_shape)
    assert a.shape == (16, 1, 28, 28) and torch.equal(a, b)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    # A trained G is not the constant mean image: its samples differ from one another.
    assert float(a.std(dim=0).mean()) > 0.05
    if model.discriminator is not None:  # D rates G's samples as probabilities
        with torch.no_grad():
            p = torch.sigmoid(model.discriminator(a.flatten(1)))
        assert p.numel() == 16 and bool(((p >= 0) & (p <= 1)).all())


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_a_damaged_copy_of_the_shipped_file_is_refused(entry, tmp_path):
    copy = tmp_path / entry.file
    shutil.copyfile(entry.path(), copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{entry.file}.*SHA-256"):
        load_generator(pretrained=entry.name, assets_dir=tmp_path)


def test_the_shipped_files_live_in_the_package():
    assert ASSETS_DIR.name == "assets" and ASSETS_DIR.parent.name == "advnets"
    for entry in ENTRIES:
        assert entry.path().parent == ASSETS_DIR

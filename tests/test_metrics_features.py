"""Feature extractors by name and the real-set feature cache (advnets.evaluate.features)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from advnets.errors import AdvnetsError, ConfigError, DataError
from advnets.evaluate import digit_features as df
from advnets.evaluate.features import FeatureCache, default_extractor, get_extractor, images_fingerprint


class MeanPool(torch.nn.Module):
    """A user's feature network: 4x4 average pooling of 28x28 images -> 49 features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 4).flatten(1)


@pytest.fixture
def scripted(tmp_path):
    path = tmp_path / "meanpool.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript, which users still bring
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(MeanPool()), str(path))
    return path


def test_digits_extractor_is_the_shipped_network():
    ext = get_extractor("digits")
    x = torch.rand(3, 1, 28, 28)
    assert ext.identity == df.SHA256
    torch.testing.assert_close(ext(x), df.digit_features(x))


def test_a_torchscript_file_is_a_feature_extractor(scripted):
    ext = get_extractor(f"file:{scripted}")
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(ext(x), torch.nn.functional.avg_pool2d(x, 4).flatten(1))
    assert ext.name == f"file:{scripted}" and len(ext.identity) == 64


def test_a_torch_export_program_is_a_feature_extractor(tmp_path):
    n = torch.export.Dim("n")
    program = torch.export.export(MeanPool(), (torch.rand(2, 1, 28, 28),), dynamic_shapes=({0: n},))
    path = tmp_path / "meanpool.pt2"
    torch.export.save(program, str(path))
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(get_extractor(f"file:{path}")(x), torch.nn.functional.avg_pool2d(x, 4).flatten(1))


def test_a_missing_or_foreign_file_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot read it"):
        get_extractor(f"file:{tmp_path / 'none.pt'}")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a module")
    with pytest.raises(DataError, match="not a TorchScript module or torch.export program"):
        get_extractor(f"file:{bad}")


class Total(torch.nn.Module):
    def forward(self, x):
        return x.sum()  # one number for the whole batch: not N x d features


def test_a_module_that_does_not_return_n_by_d_features_is_one_clear_error(tmp_path):
    program = torch.export.export(Total(), (torch.rand(2, 1, 28, 28),))
    path = tmp_path / "total.pt2"
    torch.export.save(program, str(path))
    extractor = get_extractor(f"file:{path}")
    with pytest.raises(DataError, match=r"expected N x d features for 2 images, got \(\)"):
        extractor(torch.rand(2, 1, 28, 28))
    with pytest.raises(DataError, match=r"failed on images of shape \(3, 1, 8, 8\)"):
        extractor(torch.rand(3, 1, 8, 8))


def test_unknown_extractor_names_are_refused():
    with pytest.raises(ConfigError, match="expected one of digits, inception, file:PATH"):
        get_extractor("vgg")


def test_inception_offline_fails_with_one_line_saying_what_it_needs():
    """Here torch-fidelity is absent (or its weights cannot be fetched): an AdvnetsError of one line."""
    code = (
        "from advnets.evaluate.features import get_extractor\n"
        "from advnets.errors import AdvnetsError\n"
        "try:\n    get_extractor('inception')\nexcept AdvnetsError as e:\n    print('ERROR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = out.stdout.strip().splitlines()
    if not lines or not lines[0].startswith("ERROR"):
        pytest.skip("Inception-v3 weights are available on this machine")
    assert len(lines) == 1 and "torch-fidelity" in lines[0] and "$TORCH_HOME" in lines[0]
    assert "Traceback" not in out.stderr


def test_default_extractor_by_image_shape():
    assert default_extractor((1, 28, 28)) == "digits"
    assert default_extractor((1, 8, 8)) == "digits"
    assert default_extractor((3, 32, 32)) == "inception"
    with pytest.raises(ConfigError, match="file:PATH"):
        default_extractor((1, 48, 48))


def test_cache_reuses_features_for_the_same_images_and_network(tmp_path, scripted):
    ext = get_extractor(f"file:{scripted}")
    cache = FeatureCache(tmp_path / "cache")
    x = torch.rand(6, 1, 28, 28)
    first, hit1 = cache.features(ext, x)
    second, hit2 = cache.features(ext, x)
    assert (hit1, hit2) == (False, True)
    torch.testing.assert_close(first, second)
    assert len(list((tmp_path / "cache").iterdir())) == 1  # no temporary file left behind
    _, hit3 = cache.features(ext, x + 0.01)  # other images: another key
    _, hit4 = cache.features(get_extractor("digits"), x)  # another network: another key
    assert (hit3, hit4) == (False, False)


def test_a_damaged_cache_file_is_recomputed_with_a_warning(tmp_path, scripted):
    ext = get_extractor(f"file:{scripted}")
    cache = FeatureCache(tmp_path)
    x = torch.rand(4, 1, 28, 28)
    expected, _ = cache.features(ext, x)
    path = cache.path(ext, images_fingerprint(x))
    path.write_bytes(path.read_bytes()[:50])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again, hit = cache.features(ext, x)
    assert not hit and any("unreadable feature cache" in str(w.message) for w in caught)
    torch.testing.assert_close(again, expected)
    assert cache.features(ext, x)[1]  # rewritten whole


def test_cache_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(AdvnetsError, match="is a file; expected a directory"):
        FeatureCache(f)

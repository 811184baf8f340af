"""Sampling (sampling.py): Figure 2's nearest-example column, Figure 3's paths in z."""

import torch

from advnets.config import override
from advnets.nets import Generator
from advnets.presets import PRESETS
from advnets.sampling import generate, interpolation_noise, nearest_figure, slerp

G_CFG = override(PRESETS["mnist"].generator, noise_dim=6, hidden_sizes=(8,), hidden_activations=("relu",))


def test_linear_paths_run_straight_between_exact_endpoints():
    z = interpolation_noise(G_CFG, rows=3, steps=5, seed=1).reshape(3, 5, 6)
    ends = interpolation_noise(G_CFG, rows=3, steps=2, seed=1).reshape(3, 2, 6)
    torch.testing.assert_close(z[:, 0], ends[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(z[:, -1], ends[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(z[:, 2], (z[:, 0] + z[:, -1]) / 2)  # the midpoint of a straight line
    steps = z[:, 1:] - z[:, :-1]
    torch.testing.assert_close(steps, steps[:, :1].expand_as(steps))  # equal steps


def test_spherical_paths_keep_the_norm_between_equal_norm_endpoints():
    z0 = torch.tensor([[1.0, 0.0, 0.0]])
    z1 = torch.tensor([[0.0, 1.0, 0.0]])
    path = slerp(z0, z1, torch.linspace(0, 1, 7))[0]
    torch.testing.assert_close(path.norm(dim=1), torch.ones(7))
    torch.testing.assert_close(path[3], torch.tensor([2**-0.5, 2**-0.5, 0.0]))
    z = interpolation_noise(G_CFG, rows=2, steps=4, seed=0, spherical=True).reshape(2, 4, 6)
    lin = interpolation_noise(G_CFG, rows=2, steps=4, seed=0).reshape(2, 4, 6)
    torch.testing.assert_close(z[:, [0, -1]], lin[:, [0, -1]])  # same endpoints, different path
    assert not torch.allclose(z[:, 1], lin[:, 1])


def test_generate_is_reproducible_by_seed():
    g = Generator(G_CFG, 16).eval()
    a, b, c = generate(g, 10, 3, (1, 4, 4)), generate(g, 10, 3, (1, 4, 4)), generate(g, 10, 4, (1, 4, 4))
    assert a.shape == (10, 1, 4, 4) and torch.equal(a, b) and not torch.equal(a, c)


def test_rightmost_column_is_the_exact_nearest_training_example_of_its_neighbour():
    gen = torch.Generator().manual_seed(0)
    samples = torch.rand(12, 1, 5, 5, generator=gen)
    train = torch.rand(300, 1, 5, 5, generator=gen)
    images, info = nearest_figure(samples, train, columns=4)  # 3 samples + 1 neighbour per row
    assert images.shape == (16, 1, 5, 5)
    for r in range(4):
        row = images[4 * r : 4 * r + 4]
        assert torch.equal(row[:3], samples[3 * r : 3 * r + 3])
        d = (train - samples[3 * r + 2]).flatten(1).double().norm(dim=1)
        assert info["train_index"][r] == int(d.argmin())
        assert torch.equal(row[3], train[int(d.argmin())])
        assert abs(info["distance"][r] - d.min().item()) < 1e-9

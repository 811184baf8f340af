"""The players (nets.py): maxout, the paper's MNIST architecture, dropout, the noise prior."""

import math

import pytest
import torch

from advnets.config import override
from advnets.nets import Discriminator, Generator, Maxout, apply_max_col_norm, sample_noise
from advnets.presets import PRESETS


def test_maxout_shape_and_value_equal_max_over_pieces():
    layer = Maxout(7, units=4, pieces=3)
    x = torch.randn(5, 7)
    out = layer(x)
    assert out.shape == (5, 4)
    z = x @ layer.linear.weight.T + layer.linear.bias  # pieces of unit u are columns 3u..3u+2
    expected = torch.stack([z[:, 3 * u : 3 * u + 3].max(dim=1).values for u in range(4)], dim=1)
    torch.testing.assert_close(out, expected)


def test_maxout_gradient_flows_to_the_winning_piece_only():
    layer = Maxout(3, units=2, pieces=4)
    x = torch.randn(1, 3)
    layer(x).sum().backward()
    z = (x @ layer.linear.weight.T + layer.linear.bias).view(2, 4)
    winners = z.argmax(dim=1)
    grad_bias = layer.linear.bias.grad.view(2, 4)
    for u in range(2):
        for p in range(4):
            assert grad_bias[u, p].item() == (1.0 if p == winners[u] else 0.0)


def test_mnist_preset_has_the_papers_architecture_and_init_ranges():
    cfg = PRESETS["mnist"]
    g, d = Generator(cfg.generator, 784), Discriminator(cfg.discriminator, 784)
    g_linears = [m for m in g.net if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in g_linears] == [(1200, 100), (1200, 1200), (784, 1200)]
    assert [type(m).__name__ for m in g.net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear", "Sigmoid"]
    for m in g_linears:
        assert m.weight.abs().max() <= 0.05 and m.weight.abs().max() > 0.049
    assert [(m.units, m.pieces) for m in d.hidden] == [(240, 5), (240, 5)]
    assert tuple(d.hidden[0].linear.weight.shape) == (1200, 784)
    assert tuple(d.hidden[1].linear.weight.shape) == (1200, 240)
    assert tuple(d.output.weight.shape) == (1, 240)
    for m in [d.hidden[0].linear, d.hidden[1].linear, d.output]:
        assert 0.0049 < m.weight.abs().max() <= 0.005
        assert m.bias.abs().max() == 0


def test_output_bias_is_logit_of_mean_pixel_clipped():
    cfg = PRESETS["mnist"].generator
    g = Generator(cfg, 4)
    data = torch.tensor([[0.0, 0.5, 1.0, 0.2], [0.0, 0.5, 1.0, 0.6]])
    g.init_output_bias_from_data(data)
    mean = torch.tensor([1e-3, 0.5, 1 - 1e-3, 0.4], dtype=torch.float64)
    expected = torch.log(mean / (1 - mean)).float()
    torch.testing.assert_close(g.output.bias.detach(), expected)


def test_discriminator_returns_logits_of_shape_n():
    d = Discriminator(PRESETS["mnist"].discriminator, 784).eval()
    out = d(torch.rand(6, 1, 28, 28))
    assert out.shape == (6,)
    assert out.abs().max() < 1.0  # tiny init: logits near 0, i.e. D(x) near 1/2, no sigmoid applied


@pytest.mark.parametrize(("include", "scale"), [(0.8, 1.25), (0.5, 2.0)])
def test_dropout_keeps_inputs_with_reference_probability_and_scale(include, scale):
    cfg = override(PRESETS["mnist"].discriminator, input_include_prob=include)
    d = Discriminator(cfg, 10).train()
    out = d._dropout(torch.ones(400, 500), include)
    values = set(out.unique().tolist())
    assert values == {0.0, scale}
    kept = (out > 0).float().mean().item()
    assert abs(kept - include) < 0.01


def test_discriminator_applies_dropout_on_every_layer_input_in_training_only():
    d = Discriminator(PRESETS["mnist"].discriminator, 784)
    x = torch.rand(8, 784)
    d.eval()
    assert torch.equal(d(x), d(x))
    d.train()
    assert not torch.equal(d(x), d(x))
    seen = []
    for layer in [*d.hidden, d.output]:
        layer.register_forward_pre_hook(lambda m, inp: seen.append((inp[0] == 0).float().mean().item()))
    d(torch.rand(200, 784) + 0.1)  # strictly positive inputs: zeros come from dropout
    assert abs(seen[0] - 0.2) < 0.01  # first layer's inputs kept with p = 0.8
    # later layers: maxout outputs are almost never exactly 0, so zeros are the dropped half
    assert abs(seen[1] - 0.5) < 0.02 and abs(seen[2] - 0.5) < 0.05


def test_uniform_prior_is_unit_variance_on_plus_minus_sqrt3():
    cfg = PRESETS["mnist"].generator
    z = sample_noise(cfg, 20000, generator=torch.Generator().manual_seed(1))
    assert z.shape == (20000, 100)
    assert z.min() >= -math.sqrt(3) and z.max() <= math.sqrt(3)
    assert abs(z.var().item() - 1.0) < 0.01 and abs(z.mean().item()) < 0.01


def test_normal_prior_and_seeded_reproducibility():
    cfg = override(PRESETS["mnist"].generator, noise="normal", noise_dim=8)
    a = sample_noise(cfg, 5000, generator=torch.Generator().manual_seed(3))
    b = sample_noise(cfg, 5000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.abs().max() > math.sqrt(3)  # not bounded like the uniform prior
    assert abs(a.std().item() - 1) < 0.03


def test_max_col_norm_bounds_each_units_incoming_weights():
    g = Generator(
        override(
            PRESETS["mnist"].generator, hidden_sizes=(8,), hidden_activations=("relu",), noise_dim=4, init_range=5.0
        ),
        3,
    )
    apply_max_col_norm(g, 1.9365)
    for m in g.modules():
        if isinstance(m, torch.nn.Linear):
            assert m.weight.norm(dim=1).max() <= 1.9365 + 1e-5

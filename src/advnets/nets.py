"""The players: an MLP generator G(z) and a maxout discriminator D(x).

Both are built from config (:mod:`advnets.config`), so the paper's presets are
data, not code. D returns logits; the sigmoid lives in the losses, where it can
be fused into a numerically stable softplus (paper §3, Eq. 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advnets.config import ConvMaxoutConfig, DiscriminatorConfig, GeneratorConfig
from advnets.errors import ConfigError

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "linear": nn.Identity,
}


class _MaxOverPieces(torch.autograd.Function):
    """y = max over each unit's ``pieces`` adjacent columns of z (N x units*pieces).

    The same values as ``z.view(N, units, pieces).amax(-1)``, computed faster
    on CPU (max_pool1d's no-grad kernel), and a cheaper backward: the gradient
    goes to the winning piece by one comparison and one product (amax's
    backward also counts and divides ties). Ties, which real-valued inputs do
    not produce, would each get the full gradient, as with Theano's max in the
    reference code (benchmarks/NOTES.md)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, pieces: int) -> torch.Tensor:
        if z.device.type == "cpu":
            y = nn.functional.max_pool1d(z.reshape(-1, 1, z.shape[-1]), pieces, pieces)
            y = y.view(*z.shape[:-1], z.shape[-1] // pieces)
        else:
            y = z.view(*z.shape[:-1], -1, pieces).amax(dim=-1)
        ctx.save_for_backward(z, y)
        ctx.pieces = pieces
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, None]:
        z, y = ctx.saved_tensors
        winners = z.reshape(*y.shape, ctx.pieces) == y.unsqueeze(-1)
        return (winners * grad_y.unsqueeze(-1)).reshape(z.shape), None


# Whether the running backward pass will use a node's gradient (False for what backward(inputs=...) or
# autograd.grad does not ask for). Private in torch (its multi-grad hooks use it); without it, every input
# gradient that autograd could need is computed.
_will_execute = getattr(torch._C, "_will_engine_execute_node", None)


def _pass_needs(ctx, i: int) -> bool:
    """Whether this backward pass needs the gradient of the Function's input i: autograd's static
    ``needs_input_grad``, narrowed as the engine narrows it for its own ops (e.g. torch's addmm skips its
    weight gradient under ``backward(inputs=G's parameters)``)."""
    if not ctx.needs_input_grad[i]:
        return False
    node = ctx.next_functions[i][0]
    if node is None or _will_execute is None:
        return True
    try:
        return bool(_will_execute(node))
    except RuntimeError:  # torch declines to say for a leaf under autograd.grad(): compute it
        return True


class _RowBlocksLinear(torch.autograd.Function):
    """cat(blocks) @ W.T + b as one matrix product, with each block's input gradient computed only when this
    backward pass needs it. D's first layer on a real and a generated batch (the simultaneous update): D's
    loss needs no input gradient there and G's loss needs it for the generated rows only, so that layer's
    input-gradient product shrinks from 2m rows to m (torch's layer on the concatenation computes all 2m)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor, *blocks: torch.Tensor) -> torch.Tensor:
        x = torch.cat(blocks)
        ctx.save_for_backward(weight, x)
        ctx.sizes = [len(b) for b in blocks]
        return torch.addmm(bias, x, weight.t())

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, x = ctx.saved_tensors
        # Under autocast the forward product ran in grad_z's dtype (bf16): so does the backward, as for
        # torch's own layer (autograd returns each gradient in its input's dtype). A no-op in float32.
        weight, x = weight.to(grad_z.dtype), x.to(grad_z.dtype)
        grad_w = grad_z.t().mm(x) if _pass_needs(ctx, 0) else None  # (out x N) @ (N x in), as torch's Linear
        grad_b = grad_z.sum(0) if _pass_needs(ctx, 1) else None
        grads, start = [], 0
        for i, n in enumerate(ctx.sizes):
            grads.append(grad_z[start : start + n].mm(weight) if _pass_needs(ctx, 2 + i) else None)
            start += n
        return (grad_w, grad_b, *grads)


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al., 2013): a linear map to units x pieces,
    then the max over each unit's pieces. Pieces of one unit are adjacent
    columns, as in the reference code's pylearn2 Maxout layer.

    Called with several row blocks, it maps their concatenation in one matrix
    product and computes input gradients only for the blocks that need them."""

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, *blocks: torch.Tensor) -> torch.Tensor:
        if len(blocks) == 1:
            z = self.linear(blocks[0])
        else:
            z = _RowBlocksLinear.apply(self.linear.weight, self.linear.bias, *blocks)
        return _MaxOverPieces.apply(z, self.pieces)


def _uniform_(module: nn.Module, init_range: float) -> None:
    # The reference code's "irange": weights U(-r, r), biases zero.
    nn.init.uniform_(module.weight, -init_range, init_range)
    nn.init.zeros_(module.bias)


def _shape(image_shape: int | tuple[int, ...]) -> tuple[int, ...]:
    return (image_shape,) if isinstance(image_shape, int) else tuple(image_shape)


class Generator(nn.Module):
    """G(z; theta_g): noise enters only the bottom layer (paper §3). Returns
    flat N x d samples; with ``deconv_shape`` the last hidden layer is reshaped
    and a transposed convolution produces the C x H x W image."""

    def __init__(self, cfg: GeneratorConfig, image_shape: int | tuple[int, ...]) -> None:
        super().__init__()
        self.cfg, self.image_shape = cfg, _shape(image_shape)
        self.data_dim = math.prod(self.image_shape)
        layers: list[nn.Module] = []
        width = cfg.noise_dim + cfg.cond_dim  # a conditional G takes [z, c] (§7.1)
        for size, act in zip(cfg.hidden_sizes, cfg.hidden_activations, strict=True):
            linear = nn.Linear(width, size)
            _uniform_(linear, cfg.init_range)
            layers += [linear, _ACTIVATIONS[act]()]
            width = size
        out_range = cfg.output_init_range or cfg.init_range
        if cfg.deconv_shape is None:
            self.output: nn.Module = nn.Linear(width, self.data_dim)
        else:
            if len(self.image_shape) != 3:
                raise ConfigError(f"generator.deconv_shape needs C x H x W images, got shape {self.image_shape}")
            c, h, w = self.image_shape
            k, st, pad = cfg.deconv_kernel, cfg.deconv_stride, cfg.deconv_padding
            out_h = (cfg.deconv_shape[1] - 1) * st - 2 * pad + k
            out_w = (cfg.deconv_shape[2] - 1) * st - 2 * pad + k
            if (out_h, out_w) != (h, w):
                raise ConfigError(
                    f"generator.deconv_shape {cfg.deconv_shape} with kernel {k}, stride {st}, padding {pad} gives "
                    f"{out_h}x{out_w} images; the data are {h}x{w}"
                )
            self.output = nn.ConvTranspose2d(cfg.deconv_shape[0], c, k, stride=st, padding=pad)
        _uniform_(self.output, out_range)
        if cfg.deconv_shape is None:
            layers.append(self.output)
        else:
            layers += [nn.Unflatten(1, cfg.deconv_shape), self.output, nn.Flatten(1)]
        layers.append(_ACTIVATIONS[cfg.output_activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def init_output_bias_from_data(self, data: torch.Tensor, eps: float = 1e-3) -> None:
        """Set the sigmoid output bias to logit(mean pixel), the mean clipped to
        [eps, 1 - eps] (the reference code's init_sigmoid_bias_from_marginals),
        so that G starts out producing the data's average image."""
        if not isinstance(self.output, nn.Linear):
            raise ConfigError("generator.output_bias_from_data needs a fully connected output layer")
        mean = data.reshape(len(data), -1).double().mean(dim=0).clamp(eps, 1 - eps)
        self.output.bias.copy_(torch.log(mean / (1 - mean)).to(self.output.bias.dtype))


def sample_noise(
    cfg: GeneratorConfig,
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw n noise vectors from the prior p_z: U[-sqrt(3), sqrt(3)]^dim (unit
    variance, the reference code's choice) or N(0, I)."""
    # Draw where the generator lives (a CPU generator cannot fill a CUDA
    # tensor), then move: the same seed gives the same z on every device.
    where = generator.device if generator is not None else device
    if cfg.noise == "uniform":
        a = math.sqrt(3.0)
        z = torch.rand(n, cfg.noise_dim, generator=generator, device=where).mul_(2 * a).sub_(a)
    else:
        z = torch.randn(n, cfg.noise_dim, generator=generator, device=where)
    return z if device is None else z.to(device)


class ConvMaxout(nn.Module):
    """Convolutional maxout: a convolution to channels x pieces maps, the max
    over each channel's pieces, then max-pooling (the CIFAR-10 conv D)."""

    def __init__(self, in_channels: int, cfg: ConvMaxoutConfig) -> None:
        super().__init__()
        self.channels, self.pieces = cfg.channels, cfg.pieces
        self.conv = nn.Conv2d(in_channels, cfg.channels * cfg.pieces, cfg.kernel, padding=cfg.padding)
        self.pool = nn.MaxPool2d(cfg.pool, stride=cfg.pool_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        n, _, h, w = z.shape
        return self.pool(z.view(n, self.channels, self.pieces, h, w).amax(dim=2))


class Discriminator(nn.Module):
    """D(x; theta_d): optional conv-maxout layers, maxout hidden layers, one
    linear output unit (a logit), and dropout on every layer's input during
    training (the reference code, github.com/goodfeli/adversarial). With
    ``spare_condition`` the columns after the pixels (a class-conditional D's
    one-hot label) are never dropped."""

    def __init__(
        self, cfg: DiscriminatorConfig, image_shape: int | tuple[int, ...], spare_condition: bool = False
    ) -> None:
        super().__init__()
        self.cfg, self.image_shape = cfg, _shape(image_shape)
        self.spare_condition = spare_condition and cfg.cond_dim > 0
        self.data_dim = math.prod(self.image_shape)
        # Where dropout masks come from: an explicit generator (set by the
        # trainer, so a run's randomness is its own and checkpointable) or,
        # when None, torch's global stream.
        self.dropout_generator: torch.Generator | None = None
        self.conv = nn.ModuleList()
        if cfg.conv:
            if len(self.image_shape) != 3:
                raise ConfigError(f"discriminator.conv needs C x H x W images, got shape {self.image_shape}")
            channels = self.image_shape[0]
            for layer_cfg in cfg.conv:
                layer = ConvMaxout(channels, layer_cfg)
                _uniform_(layer.conv, cfg.init_range)
                self.conv.append(layer)
                channels = layer_cfg.channels
            with torch.no_grad():  # the flattened size after the conv stack, by a dry run
                width = self._features(torch.zeros(1, *self.image_shape)).shape[1]
        else:
            width = self.data_dim + cfg.cond_dim  # a conditional D takes rows [x, c] (§7.1)
        self.hidden = nn.ModuleList()
        for units, pieces in zip(cfg.hidden_units, cfg.pieces, strict=True):
            layer = Maxout(width, units, pieces)
            _uniform_(layer.linear, cfg.init_range)
            self.hidden.append(layer)
            width = units
        self.output = nn.Linear(width, 1)
        _uniform_(self.output, cfg.init_range)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The conv stack (with dropout on each layer's input), flattened."""
        include = self.cfg.input_include_prob
        for layer in self.conv:
            x = layer(self._dropout(x, include))
            include = self.cfg.hidden_include_prob
        return x.flatten(1)

    def _dropout(self, x: torch.Tensor, include_prob: float) -> torch.Tensor:
        # Inverted dropout: keep with include_prob, scale kept inputs by
        # 1/include_prob (1.25 for p = 0.8, 2 for p = 0.5), as the reference.
        if not self.training or include_prob >= 1:
            return x
        if self.dropout_generator is None:
            return nn.functional.dropout(x, p=1 - include_prob, training=True)
        return x * self.dropout_mask(x.shape, include_prob, x.device, x.dtype)

    def dropout_mask(
        self, shape: torch.Size, include_prob: float, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        """A scaled keep mask from ``dropout_generator``: 1/include_prob where
        an input is kept (probability include_prob), 0 where it is dropped.

        One float32 uniform u per input, kept where u < include_prob: 2-4x
        faster on CPU than ``bernoulli_`` (which draws a double per input) and
        the same masks for a seed whatever the dtype. P(keep) is exact for
        p = 0.5 and within 2^-24 of p otherwise."""
        keep = torch.rand(shape, generator=self.dropout_generator, device=device).lt_(include_prob)  # 1.0 or 0.0
        return keep.to(dtype).mul_(1 / include_prob)

    def _dropout_rows(self, blocks: list[torch.Tensor], include_prob: float) -> list[torch.Tensor]:
        """Dropout on row blocks with the masks that one call on their concatenation draws."""
        if not self.training or include_prob >= 1 or self.dropout_generator is None:
            return [self._dropout(b, include_prob) for b in blocks]
        shape = (sum(len(b) for b in blocks), *blocks[0].shape[1:])
        mask = self.dropout_mask(shape, include_prob, blocks[0].device, blocks[0].dtype)
        return [b * m for b, m in zip(blocks, mask.split([len(b) for b in blocks]), strict=True)]

    def _keep_condition(self, rows: list[torch.Tensor], dropped: list[torch.Tensor]) -> list[torch.Tensor]:
        """Input dropout on the pixels only (spare_condition): a row's label says what the row
        claims to be; it is not a feature to regularise, so it passes undropped."""
        if not self.spare_condition:
            return dropped
        d = self.data_dim
        return [torch.cat([x[:, :d], r[:, d:]], dim=1) for x, r in zip(dropped, rows, strict=True)]

    def forward(self, *blocks: torch.Tensor) -> torch.Tensor:
        """D's logits for a batch, or for several row blocks (e.g. a real and a
        generated batch) as one batch: the values, masks and gradients of
        ``D(torch.cat(blocks))``, but the first layer computes an input
        gradient only for the blocks that need one (MLP D)."""
        hidden = list(self.hidden)
        if self.conv:
            x = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
            h = self._features(x.reshape(len(x), *self.image_shape))
        else:
            flat = [b.reshape(len(b), -1) for b in blocks]
            dropped = self._keep_condition(flat, self._dropout_rows(flat, self.cfg.input_include_prob))
            h = hidden.pop(0)(*dropped)
        include = self.cfg.hidden_include_prob
        for layer in hidden:
            h = layer(self._dropout(h, include))
            include = self.cfg.hidden_include_prob
        return self.output(self._dropout(h, include)).squeeze(-1)


@torch.no_grad()
def apply_max_col_norm(module: nn.Module, max_norm: float | None) -> None:
    """Rescale each unit's incoming weight vector to L2 norm <= max_norm (the
    reference code's max_col_norm constraint), applied after every update."""
    if max_norm is None:
        return
    for m in module.modules():
        if isinstance(m, nn.Linear):  # conv kernels are not constrained (no preset asks for it)
            norms = m.weight.norm(dim=1, keepdim=True)
            m.weight.mul_(torch.clamp(max_norm / (norms + 1e-7), max=1.0))


def build_nets(
    g_cfg: GeneratorConfig, d_cfg: DiscriminatorConfig, image_shape: int | tuple[int, ...]
) -> tuple[Generator, Discriminator]:
    # A class label always reaches D (embedded MNIST, one seed: conditional accuracy 0.42 against
    # 0.20 with the label dropped like a pixel). An inpainting D keeps dropout on its mask columns:
    # sparing them made completions worse and less varied (RMS 0.325 against 0.299; diversity 0.05
    # against 0.13, right halves, one seed).
    return Generator(g_cfg, image_shape), Discriminator(d_cfg, image_shape, spare_condition=g_cfg.condition == "class")

"""advnets: Generative Adversarial Nets (Goodfellow et al., 2014), faithfully and fast."""

__version__ = "0.1.0"

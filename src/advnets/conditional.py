"""Conditional adversarial nets p(x | c) (PAPER.md §5, the paper's Section 7.1).

"A conditional generative model p(x | c) can be obtained by adding c as input
to both G and D." Here c is a one-hot class label: G maps ``[z, c]`` to an
image and D scores rows ``[x, c]`` (an MLP D; ``cond_dim`` in the generator and
discriminator configs turns this on). Real rows carry their own labels; the
generated rows of a minibatch carry labels drawn uniformly from the run's
label stream, so G learns every class equally often.

How well G obeys c is measured with the cached digit classifier
(:mod:`advnets.evaluate.classifier`, trained on real training images only):

* :func:`conditional_accuracy`: the fraction of samples generated for class
  y that the classifier labels y, per class and overall;
* :func:`classification_accuracy_score`: the other direction (the
  "classification accuracy score" of Ravuri & Vinyals, 2019): a classifier
  trained on generated, labelled samples only, tested on the real test split.
"""

from __future__ import annotations

from typing import Any

import torch

from advnets.errors import AdvnetsError


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(dtype)


def with_condition(rows: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[rows, one_hot(labels)]``: G's input from noise, or D's input from flat images."""
    return torch.cat([rows.reshape(len(rows), -1), one_hot(labels, num_classes, rows.dtype)], dim=1)


def check_labels(labels: torch.Tensor | None, num_classes: int, dataset_name: str) -> torch.Tensor:
    """The dataset's training labels, checked to fit a ``num_classes`` one-hot code."""
    if labels is None or (len(labels) and int(labels.min()) < 0):  # -1 marks an unlabelled image
        raise AdvnetsError(f"--conditional needs class labels, and {dataset_name} has none (or not for every image)")
    if len(labels) and int(labels.max()) >= num_classes:
        raise AdvnetsError(
            f"--conditional: {dataset_name} has labels {int(labels.min())}..{int(labels.max())}, "
            f"but the nets are built for {num_classes} classes (0..{num_classes - 1})"
        )
    return labels


def grid_labels(n: int, num_classes: int, columns: int) -> torch.Tensor:
    """Labels for an ``n``-image grid of ``columns`` images per row: row r shows class r mod K."""
    return (torch.arange(n) // columns) % num_classes


@torch.no_grad()
def generate_for_labels(g: torch.nn.Module, labels: torch.Tensor, seed: int = 0, batch: int = 1000) -> torch.Tensor:
    """G's samples (flat rows) for the given labels, from seeded noise; G in eval mode."""
    from advnets.nets import sample_noise

    device = next(g.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    was_training = g.training
    g.eval()
    try:
        out = []
        for start in range(0, len(labels), batch):
            part = labels[start : start + batch]
            z = sample_noise(g.cfg, len(part), generator=gen).to(device)
            out.append(g(with_condition(z, part.to(device), g.cfg.cond_dim)).cpu())
    finally:
        g.train(was_training)
    return torch.cat(out)


def conditional_accuracy(g: torch.nn.Module, classifier: Any, per_class: int = 100, seed: int = 0) -> dict[str, Any]:
    """How often the classifier labels a sample generated for class y as y."""
    k = g.cfg.cond_dim
    labels = torch.arange(k).repeat_interleave(per_class)
    samples = generate_for_labels(g, labels, seed)
    predicted = classifier.predict(samples.reshape(len(samples), *g.image_shape)).cpu()
    hits = (predicted == labels).double()
    per = [float(hits[labels == y].mean()) for y in range(k)]
    return {"accuracy": float(hits.mean()), "per_class": per, "per_class_samples": per_class}


def classification_accuracy_score(g: torch.nn.Module, dataset: Any, per_class: int = 500, seed: int = 0) -> float:
    """Accuracy on the real test split of a classifier trained only on G's labelled samples."""
    from dataclasses import replace

    from advnets.evaluate.classifier import train_digit_classifier

    k = g.cfg.cond_dim
    labels = torch.arange(k).repeat_interleave(per_class)
    samples = generate_for_labels(g, labels, seed).clamp(0, 1)
    train = samples.reshape(len(samples), *g.image_shape)
    synthetic = replace(dataset, name=f"{dataset.name}-generated", train=train, train_labels=labels)
    model = train_digit_classifier(synthetic, seed=seed, device=next(g.parameters()).device)
    return float(model.test_accuracy)


def class_evaluation(g: torch.nn.Module, dataset: Any, classifier: Any, n: int = 1000, seed: int = 0) -> dict:
    """What the digit classifier sees in G's samples: class coverage and the
    MNIST score of ``n`` samples (any G), and for a conditional G also
    :func:`conditional_accuracy` and :func:`classification_accuracy_score`."""
    from advnets.evaluate.classifier import class_coverage
    from advnets.sampling import generate

    result: dict[str, Any] = {"dataset": dataset.name, "classifier_test_accuracy": classifier.test_accuracy}
    if g.cfg.condition == "class":
        labels = torch.arange(n) % g.cfg.cond_dim  # an equal share of every class
        samples = generate(g, n, seed, g.image_shape, labels=labels)
    else:
        samples = generate(g, n, seed, g.image_shape)
    result["coverage"] = class_coverage(classifier, samples.clamp(0, 1))
    if g.cfg.condition == "class":
        result["conditional"] = conditional_accuracy(g, classifier, per_class=max(1, n // g.cfg.cond_dim), seed=seed)
        result["classification_accuracy_score"] = classification_accuracy_score(g, dataset, seed=seed)
    return result

"""Conditional adversarial nets p(x | c) (paper §7.1).

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

from advnets.conditioning import check_labels, grid_labels, one_hot, with_condition
from advnets.sampling import generate

__all__ = [
    "check_labels",
    "class_evaluation",
    "classification_accuracy_score",
    "conditional_accuracy",
    "grid_labels",
    "one_hot",
    "with_condition",
]


def conditional_accuracy(g: torch.nn.Module, classifier: Any, per_class: int = 100, seed: int = 0) -> dict[str, Any]:
    """How often the classifier labels a sample generated for class y as y."""
    k = g.cfg.cond_dim
    labels = torch.arange(k).repeat_interleave(per_class)
    samples = generate(g, len(labels), seed, g.image_shape, labels=labels)
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
    train = generate(g, len(labels), seed, g.image_shape, labels=labels).clamp(0, 1)
    synthetic = replace(dataset, name=f"{dataset.name}-generated", train=train, train_labels=labels)
    model = train_digit_classifier(synthetic, seed=seed, device=next(g.parameters()).device)
    return float(model.test_accuracy)


def class_evaluation(g: torch.nn.Module, dataset: Any, classifier: Any, n: int = 1000, seed: int = 0) -> dict:
    """What the digit classifier sees in G's samples: class coverage and the
    MNIST score of ``n`` samples (any G), and for a conditional G also
    :func:`conditional_accuracy` and :func:`classification_accuracy_score`."""
    from advnets.evaluate.classifier import class_coverage

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

"""The collapse detector and its advice (advnets.monitor): when a warning fires and what it recommends."""

import numpy as np
import pytest

from advnets.errors import DataError
from advnets.monitor import CollapseDetector, collapse_advice


def _feed(det, ratios, start=100, every=100, d_real=None, d_fake=None):
    out = []
    for i, r in enumerate(ratios):
        dr = None if d_real is None else d_real[i]
        df = None if d_fake is None else d_fake[i]
        out.append((start + i * every, det.update(start + i * every, r, d_real=dr, d_fake=df)))
    return [(s, m) for s, m in out if m is not None]


def test_healthy_training_never_warns():
    det = CollapseDetector()
    rng = np.random.default_rng(5)
    n = 200
    warned = _feed(
        det,
        list(rng.uniform(0.5, 1.1, n)),
        d_real=list(rng.uniform(0.4, 0.8, n)),
        d_fake=list(rng.uniform(0.2, 0.6, n)),
    )
    assert warned == [] and det.warnings == []


def test_sustained_low_diversity_warns_once_at_the_right_step():
    det = CollapseDetector()  # ratio < 0.3 for 3 consecutive checks
    ratios = [0.9, 0.8, 0.25, 0.2, 0.1, 0.05, 0.05, 0.04, 0.1, 0.05]
    warned = _feed(det, ratios)  # checks at steps 100, 200, ...; low from step 300
    assert len(warned) == 1
    step, msg = warned[0]
    assert step == 500
    assert msg.startswith("step 500:") and "steps 300 to 500" in msg
    assert "diversity" in msg and "learning rate" in msg and "seed" in msg
    assert det.warnings == [(500, msg)]


@pytest.mark.parametrize(
    "d_lr_scale, instance_noise, recommended, already",
    [
        (1.0, 0.0, ["--d-lr-scale 2", "--instance-noise 0.1"], []),
        (2.0, 0.0, ["--instance-noise 0.1"], ["--d-lr-scale 2"]),
        (1.0, 0.1, ["--d-lr-scale 2"], ["--instance-noise 0.1"]),
        (2.0, 0.1, [], []),
    ],
    ids=["paper-recipe", "fast-d-only", "noise-only", "both"],
)
def test_collapse_advice_recommends_only_what_the_run_does_not_do(d_lr_scale, instance_noise, recommended, already):
    """Issue 18: the remedy is recommended option by option, never to a run that already uses it."""
    advice = collapse_advice(d_lr_scale, instance_noise)
    tail = advice.split("Resume from an earlier checkpoint with ")[-1] if recommended else ""
    for option in recommended:
        assert option in tail  # recommended in the closing advice
    for option in already:
        assert f"already uses {option}" in advice  # said to be in use ...
        assert option not in tail  # ... and not recommended again
    if not recommended:
        assert (
            "already uses the remedy measured in advnets' stability benchmark (--d-lr-scale 2 --instance-noise 0.1"
            in advice
        )
        assert "another --seed" in advice and "When training collapses" in advice
        assert "Resume from an earlier checkpoint with" not in advice
    assert collapse_advice(d_lr_scale, instance_noise) == advice  # pure: same config, same text


def test_collapse_advice_names_the_runs_own_values_where_they_differ():
    advice = collapse_advice(0.5, 0.2)
    assert "with --d-lr-scale 2 --instance-noise 0.1 (this run has --d-lr-scale 0.5, --instance-noise 0.2)" in advice
    assert "(this run has" not in collapse_advice(1.0, 0.0)  # the paper's values need no note


def test_the_detector_ends_its_warning_with_the_runs_advice():
    det = CollapseDetector(advice=collapse_advice(2.0, 0.1))
    (_, msg), *_ = _feed(det, [0.1, 0.1, 0.1])
    assert msg.endswith(collapse_advice(2.0, 0.1))
    assert "Resume from an earlier checkpoint with" not in msg
    (_, default), *_ = _feed(CollapseDetector(), [0.1, 0.1, 0.1])
    assert default.endswith(collapse_advice())  # the paper's recipe by default


def test_a_brief_dip_does_not_warn_and_a_new_episode_warns_again():
    det = CollapseDetector()
    assert _feed(det, [0.9, 0.1, 0.2, 0.9, 0.1, 0.9, 0.2, 0.1, 0.8]) == []  # dips of 2 checks or fewer
    det = CollapseDetector()
    warned = _feed(det, [0.1, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1])
    assert [s for s, _ in warned] == [300, 800]  # recovered at step 500: a second episode
    # a check without a diversity measurement neither extends nor breaks the streak
    det = CollapseDetector()
    assert det.update(1, 0.1) is None and det.update(2) is None and det.update(3, 0.1) is None
    assert det.update(4, d_real=0.5, d_fake=0.5) is None
    assert det.update(5, 0.1).startswith("step 5:")


def test_discriminator_winning_warns():
    det = CollapseDetector()  # D(G(z)) < 0.05 and D(x) > 0.95 for 3 consecutive checks
    d_fake = [0.4, 0.2, 0.04, 0.01, 0.001, 0.001, 0.002]
    d_real = [0.6, 0.8, 0.96, 0.99, 0.999, 0.999, 0.999]
    warned = _feed(det, [None] * 7, d_real=d_real, d_fake=d_fake)
    assert len(warned) == 1 and warned[0][0] == 500
    msg = warned[0][1]
    assert msg.startswith("step 500:") and "D(G(z))" in msg and "D(x)" in msg and "steps 300 to 500" in msg
    # D(G(z)) near 0 alone (D(x) not near 1) is not the pattern
    det = CollapseDetector()
    assert _feed(det, [None] * 5, d_real=[0.7] * 5, d_fake=[0.01] * 5) == []
    # both conditions at once: one message naming both
    det = CollapseDetector(window=2)
    warned = _feed(det, [0.1, 0.1], d_real=[0.99, 0.99], d_fake=[0.01, 0.01])
    assert len(warned) == 1 and warned[0][1].count("step 200:") == 2


def test_detector_state_round_trip_and_errors():
    det = CollapseDetector()
    _feed(det, [0.1, 0.1])
    resumed = CollapseDetector()
    resumed.load_state_dict(det.state_dict())
    message = det.update(300, 0.1)
    assert message is not None and resumed.update(300, 0.1) == message
    with pytest.raises(DataError, match="does not come after"):
        det.update(300, 0.5)
    with pytest.raises(DataError, match="d_fake"):
        det.update(400, d_real=0.5, d_fake=1.5)
    with pytest.raises(DataError, match="diversity_ratio"):
        det.update(400, float("nan"))
    with pytest.raises(DataError, match="window"):
        CollapseDetector(window=0)
    with pytest.raises(DataError, match="d_real_min"):
        CollapseDetector(d_real_min=2.0)
    with pytest.raises(DataError, match="not a CollapseDetector state"):
        resumed.load_state_dict({"runs": {}})

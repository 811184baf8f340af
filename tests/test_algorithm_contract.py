"""The typed contract of Algorithm 1's updates (advnets.train.algorithm.Players / Iteration): what provides it."""

from __future__ import annotations

import typing

import pytest

from advnets.toy import start_game
from advnets.toy.config import toy_config
from advnets.train import Trainer, algorithm
from conftest import tiny_config


def _members(protocol: type) -> set[str]:
    """Every attribute and method the protocol names (its annotations and its functions), its bases' included."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (object, typing.Protocol, typing.Generic):
            continue
        names |= set(getattr(klass, "__annotations__", {}))
        names |= {n for n, v in vars(klass).items() if callable(v) or isinstance(v, property)} - {"__init__"}
    return {n for n in names if not n.startswith("_")}


def test_a_trainer_provides_every_member_of_the_iteration_contract(digits):
    trainer = Trainer(tiny_config(), digits)
    assert isinstance(trainer, algorithm.Iteration)
    missing = [name for name in _members(algorithm.Iteration) if not hasattr(trainer, name)]
    assert not missing
    assert {"m", "noise", "seen_by_d", "updates", "d_steps_done", "epoch"} <= _members(algorithm.Iteration)


def test_the_toy_game_provides_the_players_contract_the_updates_take():
    game = start_game(toy_config("gaussian", steps=10))
    assert isinstance(game, algorithm.Players)
    assert not [name for name in _members(algorithm.Players) if not hasattr(game, name)]
    assert not isinstance(game, algorithm.Iteration)  # the toy runs its own loop (advnets.toy.game.iterate)


def test_an_object_missing_one_member_does_not_satisfy_the_contract(digits):
    trainer = Trainer(tiny_config(), digits)
    del trainer.real_label
    assert not isinstance(trainer, algorithm.Players)
    with pytest.raises(AttributeError):
        algorithm.d_step(trainer)


def test_the_eager_and_the_compiled_update_functions_both_provide_updates():
    import inspect

    from advnets.train.compiled import CompiledSteps

    names = _members(algorithm.Updates)
    assert names == {"d_step", "g_step", "simultaneous_step"}
    for name in names:
        eager = list(inspect.signature(getattr(algorithm, name)).parameters)
        compiled = list(inspect.signature(getattr(CompiledSteps, name)).parameters)[1:]  # less self
        assert len(eager) == len(compiled) == 1, name  # each takes the players alone

"""The JSON API of ``advnets explore``: each endpoint as one function of the sessions and the request's arguments.

POST bodies and GET queries are JSON objects of the names below; an unknown or missing name is a 400 (checked
against the method's signature), a bad value a 400 naming it (ConfigError from the sessions). Nothing here takes
a path.

=======  ======================  ===========================================================================
method   path                    arguments -> answer
=======  ======================  ===========================================================================
GET      /api/toy                -> the toy view (:meth:`ToySession.view`)
POST     /api/toy/step           kind ("iteration", "d", "g"), n -> the view after n of them
POST     /api/toy/settings       any of dataset, seed, rule, points, k, g_loss, optimizer, lr, g_lr, batch_size
POST     /api/toy/reset          -> fresh players, same settings
GET      /api/model              -> the model's description, or 404 when none is loaded
POST     /api/model/grid         seed, n, class -> n samples
POST     /api/model/neighbours   seed, index, class -> a grid sample's nearest training images, distance ratio
POST     /api/model/path         seed, a, b, steps, spherical, class -> images along Figure 3's path
POST     /api/model/move         seed, index, amounts, class -> a grid sample moved along z directions
POST     /api/model/verdict      pixels, class -> D's estimate that a drawn image is real, its neighbours
POST     /api/model/inpaint      mask, index or pixels, k, seed -> completions (§7.3)
GET      /api/model/progress     after -> metrics rows after a step; reloads a newer checkpoint
=======  ======================  ===========================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from advnets.errors import ConfigError

__all__ = ["ROUTES"]


def _call(method: Callable[..., Any], args: dict[str, Any]) -> Any:
    """``method(**args)``, after checking the argument names against its signature (ConfigError naming them)."""
    try:
        inspect.signature(method).bind(**args)
    except TypeError as e:
        raise ConfigError(f"bad arguments: {e}") from None
    return method(**args)


def _toy_step(ex: Any, args: dict[str, Any]) -> dict[str, Any]:
    _call(ex.toy.step, args)
    return ex.toy_view()


def _toy_settings(ex: Any, args: dict[str, Any]) -> dict[str, Any]:
    ex.toy.configure(args)
    return ex.toy_view()


def _toy_reset(ex: Any, args: dict[str, Any]) -> dict[str, Any]:
    if args:
        raise ConfigError("reset takes no arguments")
    ex.toy.reset()
    return ex.toy_view()


def _toy_view(ex: Any, args: dict[str, Any]) -> dict[str, Any]:
    if args:
        raise ConfigError(f"unknown argument(s): {', '.join(sorted(args))}")
    return ex.toy_view()


def _model_info(ex: Any, args: dict[str, Any]) -> dict[str, Any]:
    return ex.need_model().info()


def _with_class(args: dict[str, Any]) -> dict[str, Any]:
    out = dict(args)
    if "class" in out:
        out["label"] = out.pop("class")
    return out


def _progress(ex: Any, args: dict[str, Any]) -> dict[str, Any]:
    after = args.pop("after", "-1")
    if args:
        raise ConfigError(f"unknown argument(s): {', '.join(sorted(args))}")
    try:
        after = int(after)
    except ValueError:
        raise ConfigError(f"after must be an integer, got {after!r}") from None
    return ex.need_model().progress(after)


ROUTES = {
    ("GET", "/api/toy"): _toy_view,
    ("POST", "/api/toy/step"): _toy_step,
    ("POST", "/api/toy/settings"): _toy_settings,
    ("POST", "/api/toy/reset"): _toy_reset,
    ("GET", "/api/model"): _model_info,
    ("POST", "/api/model/grid"): lambda ex, a: _call(ex.need_model().grid, _with_class(a)),
    ("POST", "/api/model/neighbours"): lambda ex, a: _call(ex.need_model().sample_neighbours, _with_class(a)),
    ("POST", "/api/model/path"): lambda ex, a: _call(ex.need_model().path, _with_class(a)),
    ("POST", "/api/model/move"): lambda ex, a: _call(ex.need_model().move, _with_class(a)),
    ("POST", "/api/model/verdict"): lambda ex, a: _call(ex.need_model().verdict, _with_class(a)),
    ("POST", "/api/model/inpaint"): lambda ex, a: _call(ex.need_model().inpaint, a),
    ("GET", "/api/model/progress"): _progress,
}

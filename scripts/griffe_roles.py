"""A griffe extension (mkdocs.yml, mkdocstrings' ``extensions:``): Sphinx roles in the docstrings read as code.

The docstrings cross-reference with reST roles (``:func:`plan_run```, ``:class:`~advnets.data.Dataset```),
which Markdown would show as a literal ``:func:`` before the name. This turns each into an inline code span of
the name (``~`` dropped), leaving the docstrings themselves unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


def plain_roles(text: str) -> str:
    """``text`` with every ``:role:`name``` written as the code span ```name```."""
    return ROLE.sub(r"`\1`", text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)

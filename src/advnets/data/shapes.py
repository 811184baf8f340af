"""The one check every reader applies to the array shape a file declares.

A file format that states its own dimensions (an IDX header, a MATLAB array's
dimensions, a CIFAR pickle's array shape) can state nonsense: a zero dimension
(``120 x 28 x 0`` images), which makes an empty array that is accepted here and
fails later with an error naming some *other* file, or dimensions whose product
is more data than the file could hold. Both are refused where the shape is read,
naming the file (issue 18: "every reader must refuse a zero or absurd dimension
naming the file it is in").
"""

from __future__ import annotations

import math
import os

from advnets.errors import DataError

__all__ = ["check_declared_shape"]


def check_declared_shape(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    what: str,
    *,
    itemsize: int = 1,
    capacity: int | None = None,
    capacity_text: str = "",
) -> int:
    """Refuse a declared ``shape`` with a zero dimension or more data than the file can hold.

    Args:
        path: the file the shape comes from (named in the error).
        shape: the declared dimensions, e.g. ``(120, 28, 28)``.
        what: what declares it, e.g. ``"header"`` or ``"variable 'images'"``.
        itemsize: bytes per element.
        capacity: the most data bytes the file can hold (None: not checked here).
        capacity_text: how that capacity arises, for the message (e.g. "only 12 bytes follow the header").

    Returns:
        the number of data bytes the shape needs, ``prod(shape) * itemsize``.

    Raises:
        DataError: naming ``path``, for a zero dimension or ``prod(shape) * itemsize > capacity``.
    """
    dims = "x".join(map(str, shape))
    zeros = [i + 1 for i, d in enumerate(shape) if d == 0]
    if zeros:
        which = ", ".join(map(str, zeros))
        raise DataError(
            f"{path}: {what} declares a {dims} array, with a zero dimension (dimension {which} of {len(shape)}); "
            "expected every dimension to be at least 1: the file is corrupt or was written from an empty array"
        )
    nbytes = math.prod(shape) * itemsize
    if capacity is not None and nbytes > capacity:
        room = capacity_text or f"the file can hold at most {capacity} bytes"
        raise DataError(
            f"{path}: {what} claims a {dims} array ({nbytes} bytes of data) but {room}; "
            "the file is truncated or its header is corrupt"
        )
    return nbytes

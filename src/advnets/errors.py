"""The project's own exceptions.

Everything a user can cause (a bad option, a missing or malformed file, an
incompatible checkpoint) raises an :class:`AdvnetsError` subclass with a
message that names the file or option and what was expected. The CLI turns
these into one line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""


class AdvnetsError(Exception):
    """A problem with the user's input, reported as one clear line."""


class ConfigError(AdvnetsError, ValueError):
    """An unknown key, a wrong type or an impossible value in a configuration."""


class DataError(AdvnetsError, ValueError):
    """A dataset file or array that is missing, malformed or of the wrong shape."""


class CheckpointError(AdvnetsError):
    """A checkpoint or run directory that cannot be loaded or resumed."""


class WriteError(AdvnetsError):
    """A file could not be written because its filesystem is full, over quota or read-only; the message names
    the file and what to do (what a run directory still holds, and how to continue)."""


class TooFewSamples(DataError):
    """A set of samples or features with fewer rows than a statistic needs (N > d for a covariance, more than
    k for k-NN radii): a caller that cut one set to the size of another can say which count is short."""

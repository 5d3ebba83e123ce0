"""
The errors that stop a node at start, with one line that says why.

The node runner logs any of :data:`START_ERRORS` as that one line (under
the node's name) and exits with status 1; anything else is a bug.
"""


class ParameterError(ValueError):
    """A parameter value that is refused; the message names it."""


class SourceError(RuntimeError):
    """A frame source that cannot be opened or read; names the source."""


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says what to do."""


START_ERRORS = (ParameterError, SourceError, ModelLoadError)

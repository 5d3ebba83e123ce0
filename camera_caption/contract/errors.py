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


class MemoryInputError(ValueError):
    """Input the caption memory refuses; the message names field and value."""


class MemoryStoreError(RuntimeError):
    """
    The caption memory's database cannot be opened or written; says why.

    ``corrupt``: the file at ``path`` is not a readable database.
    """

    def __init__(self, message, path='', corrupt=False):
        super().__init__(message)
        self.path, self.corrupt = path, corrupt


START_ERRORS = (ParameterError, SourceError, ModelLoadError, MemoryStoreError)

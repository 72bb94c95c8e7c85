"""Errors that reach a researcher as one sentence: what went wrong, where, and what to do."""


class Act2iError(Exception):
    """Base class: the message is the whole story, no traceback needed."""


class ConfigError(Act2iError):
    """A profile or override is invalid."""


class ModelLoadError(Act2iError):
    """A model could not be loaded from a Hugging Face id or a local folder."""


class InputError(Act2iError):
    """An input file (prompt set, manifest, annotations) is malformed."""


class NotebookError(Act2iError):
    """A stage notebook failed while running under papermill."""

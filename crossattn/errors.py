"""The library's one error base class.

Everything the library raises for a problem the user can fix (a bad file, a broken model
directory, an option this machine cannot honour) derives from :class:`CrossattnError`,
with a one-line message. The command line prints those and exits 1; anything else is a
bug and keeps its traceback. Most also derive from ``ValueError`` for callers that
catch that.
"""


class CrossattnError(Exception):
    """A problem the user can fix, described in one line."""


class ConfigError(CrossattnError, ValueError):
    """An invalid model or training configuration."""


class InputError(CrossattnError, ValueError):
    """Invalid input to a library function: text, a file's contents, an index out of range."""

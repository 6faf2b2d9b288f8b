"""Exceptions meant for the person at the keyboard.

Every error a user can cause (a bad path, a corrupt checkpoint, an out-of-range flag) is raised as a subclass of
:class:`AutocompleteError` with a message that can be printed as-is on one line. Only ``cli.py`` turns them into
output and exit codes; library users catch them like any other exception.
"""

from __future__ import annotations


class AutocompleteError(Exception):
    """Base class: the message is a complete, user-facing sentence."""


class CheckpointError(AutocompleteError):
    """A model file is missing, truncated, foreign, unsafe or from a newer format."""


class NewerFormatError(CheckpointError):
    """A file written by a newer version of autocomplete: not damaged, only not readable here."""


class CorpusError(AutocompleteError):
    """A training or evaluation corpus cannot be read or holds no usable text."""


class ConfigError(AutocompleteError, ValueError):
    """An option has a value outside its valid range (or of the wrong kind). Also a :class:`ValueError`, so that
    library code that catches bad values the usual way catches these too."""


class UsageError(ConfigError):
    """A command line that cannot work, found only once its inputs are opened (a ``--valid`` text with nothing in
    it): said as a bad option is, in one usage line with exit status 2, before any work is done."""


class DistributedError(AutocompleteError):
    """A process of a ``torchrun`` group cannot join it, or lost contact with the others."""


class OutputError(AutocompleteError):
    """An output that must not be written: an input of the same run, a device or pipe, a file another run writes."""


class TrainingError(AutocompleteError):
    """Training cannot go on (the loss diverged to NaN or infinity); nothing broken was written."""

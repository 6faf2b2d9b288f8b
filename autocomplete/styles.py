"""Which style a session reads and writes text in.

A model trained with styles (``autocomplete train books/=prose chats/=dialogue ...``) opens every utterance with a
style token; the session picks the style from its mode — chatting reads like a dialogue, typing like prose — unless the
user names one (``--style``, ``:style``). A model without styles has nothing to pick: the style is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from autocomplete.errors import ConfigError

# the style each use asks for by default: the session's modes, and code (comments, docstrings and commands in the
# shells the plugins join: IPython, ptpython, readline programs)
MODE_STYLES = {"type": "prose", "chat": "dialogue", "code": "tech"}


def pick_style(requested: str | None, mode: str, available: Sequence[str]) -> str | None:
    """The style to use: ``requested`` if given, else the mode's (or the model's first style when it lacks that one);
    None for a model without styles. A requested style the model lacks is a :class:`ConfigError`."""
    if not available:
        return None
    if requested is not None:
        if requested not in available:
            raise ConfigError(f"unknown style {requested!r}; this model knows {', '.join(available)}")
        return requested
    default = MODE_STYLES.get(mode)
    return default if default in available else available[0]

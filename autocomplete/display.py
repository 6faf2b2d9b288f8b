"""How numbers from the model are written for people (the CLI, the session's toolbar, the menus, embedding programs).

Standard library only: formatting a probability must not load PyTorch or prompt_toolkit.
"""

from __future__ import annotations


def percent(p: float) -> str:
    """A probability as a percentage with one decimal: ``42.0%``, ``10.0%``, ``9.9%``, ``0.1%``, ``<0.1%``.

    The same number of decimals everywhere, so a column of them lines up and 0.0995 and 0.1 read the same; a rare
    word is never shown as a misleading ``0.0%``.
    """
    return f"{p:.1%}" if p >= 0.001 else "<0.1%"

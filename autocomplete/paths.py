"""Where things live on disk: the shipped default model and the user's data directory."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from platformdirs import user_data_path

from autocomplete.errors import CheckpointError

MODEL_ENV = "AUTOCOMPLETE_MODEL"
DATA_ENV = "AUTOCOMPLETE_DATA_DIR"
_PACKAGE = Path(__file__).resolve().parent


def default_model_candidates() -> list[Path]:
    """Where the default model is looked for, in order: $AUTOCOMPLETE_MODEL, the installed package, the checkout."""
    candidates = []
    if os.environ.get(MODEL_ENV):
        candidates.append(Path(os.environ[MODEL_ENV]).expanduser())
    candidates.append(_PACKAGE / "_model" / "default.pt")  # inside an installed wheel
    candidates.append(_PACKAGE.parent / "models" / "default.pt")  # a source checkout or editable install
    return candidates


def default_model_path() -> Path:
    candidates = default_model_candidates()
    if os.environ.get(MODEL_ENV):
        return candidates[0]  # an explicit choice: report it as missing rather than silently falling back
    for path in candidates:
        if path.is_file():
            return path
    raise CheckpointError(
        "no default model found (looked in " + ", ".join(str(p) for p in candidates)
        + "); pass --model PATH or train one with 'autocomplete train'"
    )


def data_dir() -> Path:
    """The user's data directory (history lives here); $AUTOCOMPLETE_DATA_DIR overrides it."""
    override = os.environ.get(DATA_ENV)
    return Path(override).expanduser() if override else user_data_path("autocomplete", appauthor=False)


def private_folder(folder: Path) -> None:
    """Make ``folder`` if it is missing, readable by its user only (0700), as shells keep their history: it holds
    what the user typed (the history, the words and text learned). Its missing parents get the usual mode."""
    if folder.is_dir():
        return
    for above in (folder, *folder.parents):  # the first that exists must be a folder ("File exists" says nothing)
        if os.path.lexists(above):
            if not above.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "a file, not a folder", str(above))
            break
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)


def keep_private(path: Path) -> None:
    """A file of the user's that an older version left readable by others (made under the umask, 0644) becomes
    readable by its user only: it holds what they typed. Only a file they own, never its folder (which may be one they
    share); one that cannot be changed is left as it is."""
    if not hasattr(os, "getuid"):
        return
    try:
        info = path.lstat()  # a link's target lies elsewhere: the user's own business, never changed here
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and info.st_uid == os.getuid():
            os.chmod(path, info.st_mode & 0o700)
    except OSError:
        pass

"""The errors a user can act on. The CLI prints them as one line (no traceback) and exits with `exit_code`.

Anything else that escapes is a bug and keeps its traceback. `TTSLAB_TRACEBACK=1` shows the traceback of
these too.
"""

from __future__ import annotations


class TTSLabError(Exception):
    """Base of user-facing errors: the message names the key, file or value and what is expected."""

    exit_code = 2


class ConfigError(TTSLabError, ValueError):
    """A config value (Hydra override, preset, method spec) that is not allowed."""


class InputError(TTSLabError, ValueError):
    """A file the user gave (dataset, run directory, record line, model file) that cannot be used."""


class RunFailed(TTSLabError, RuntimeError):
    """A run that started correctly but could not finish (a server died, the disk is full...).

    Finished records are kept; rerunning the same command resumes.
    """

    exit_code = 1

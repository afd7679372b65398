"""What every command shares: the exit codes, the error line, the missing-key message."""

from __future__ import annotations

import sys
from typing import Final

from .._config import API_KEY_ENV

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "PROG", "error", "no_key"]

#: Every document (or the request) is done.
EXIT_OK: Final = 0
#: A document or request failed, or the run stopped on an error.
EXIT_FAILED: Final = 1
#: A usage or configuration error: a bad option, no API key, an unusable folder.
EXIT_USAGE: Final = 2
#: Interrupted (Ctrl-C).
EXIT_INTERRUPTED: Final = 130

PROG: Final = "aioupstage-ocr"


def error(message: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def no_key(*, emulator_flag: bool) -> str:
    """The message for a command run without an API key.

    `emulator_flag`: the command takes `--emulator` (else it can only be
    pointed at a running emulator, where any key works).
    """
    hint = (
        "or add --emulator to run on the bundled emulator"
        if emulator_flag
        else "against the emulator any value works"
    )
    return (
        f"no API key: set the {API_KEY_ENV} environment variable (export {API_KEY_ENV}=...); {hint}"
    )

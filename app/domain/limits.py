"""Size limits on what clients send: a shared server must not store or parse without bounds.

Every string a client sends has a maximum. Where a string ends up as one argument of a process (commands,
environment variables), the limit is what Linux can execute at all, counted in UTF-8 bytes; elsewhere it
is a generous bound on what the thing can be. File contents, stdin text and file mount contents are data,
not fields: they are bounded by the request body limit (DEVBOX_MAX_BODY_BYTES) only."""

from __future__ import annotations

from typing import Any

from app.domain.errors import InvalidRequest

METADATA_MAX_KEYS = 64
METADATA_KEY_MAX = 256
METADATA_VALUE_MAX = 4096

# Devbox, snapshot, blueprint and secret names: a label for people; the name columns are String(256).
NAME_MAX = 256
# Ids (snapshot_id, command_id, blueprint_id, ...): ours are ~30 characters and the id columns String(64);
# a command_id is a UUID (36).
ID_MAX = 64
# Statuses and signal names: every valid one is a short word; the bound keeps error messages that quote
# an unknown value short.
WORD_MAX = 64
# A command (execute*, launch_commands, entrypoint, install_command) is one argv string of `bash -lc`:
# Linux refuses any single argument or environment string of MAX_ARG_STRLEN (32 pages = 128 KiB) or more,
# counting its NUL, so a longer command could never start.
COMMAND_MAX_BYTES = 128 * 1024 - 1
# File paths: Linux PATH_MAX.
PATH_MAX = 4096
# Environment variable names (shell identifiers) and values (UTF-8 bytes). `NAME=value` is one envp
# string, so it must stay under MAX_ARG_STRLEN as well.
ENV_NAME_MAX = 256
ENV_VALUE_MAX = 64 * 1024
# All environment variables together. Every command's argv and envp share ARG_MAX (a quarter of the 8 MiB
# default stack, 2 MiB); 1 MiB of variables leaves room for a maximal command and the base environment,
# so no devbox is created in which every command fails with "Argument list too long".
ENV_TOTAL_BYTES = 1024 * 1024
# A git ref or commit to check out: refs are paths under .git (255 bytes a component); room for nesting.
GIT_REF_MAX = 1024
# A git access token: GitHub's tokens are 40-255 characters, app installation JWTs under 2 KiB.
TOKEN_MAX = 4096


def check_metadata(metadata: dict[str, Any]) -> None:
    if len(metadata) > METADATA_MAX_KEYS:
        raise InvalidRequest(f"metadata has {len(metadata)} keys; at most {METADATA_MAX_KEYS} are allowed")
    for key, value in metadata.items():
        if not key or len(key) > METADATA_KEY_MAX:
            raise InvalidRequest(f"metadata keys must be 1..{METADATA_KEY_MAX} characters, got {key[:40]!r}...")
        if isinstance(value, str) and len(value) > METADATA_VALUE_MAX:
            raise InvalidRequest(f"metadata value of {key!r} is longer than {METADATA_VALUE_MAX} characters")


def check_length(value: str, max_chars: int, field: str) -> str:
    """`value` if it has at most `max_chars` characters, else a 400 naming the field (and not echoing it)."""
    if len(value) > max_chars:
        raise InvalidRequest(f"{field} is {len(value)} characters long; at most {max_chars} are allowed")
    return value


def utf8_size(value: str) -> int:
    """Bytes `value` takes in a process's argv or envp; JSON may carry lone surrogates, counted as 3 bytes."""
    return len(value.encode("utf-8", "surrogatepass"))


def check_command(value: str, field: str) -> str:
    """`value` if it fits in one argument of a process (see COMMAND_MAX_BYTES), else a 400 naming the field."""
    if (size := utf8_size(value)) > COMMAND_MAX_BYTES:
        raise InvalidRequest(
            f"{field} is {size} bytes in UTF-8; at most {COMMAND_MAX_BYTES} fit in one argument of a process "
            "(Linux MAX_ARG_STRLEN)"
        )
    return value


def check_environment(environment: dict[str, str]) -> None:
    """Each name and value, and all of them together, within what every command's environment can hold."""
    total = 0
    for name, value in environment.items():
        check_length(name, ENV_NAME_MAX, "environment variable name")
        if (size := utf8_size(value)) > ENV_VALUE_MAX:
            raise InvalidRequest(
                f"environment variable {name} is {size} bytes in UTF-8; at most {ENV_VALUE_MAX} are allowed"
            )
        total += len(name) + size + 2  # "=" and the NUL
    if total > ENV_TOTAL_BYTES:
        raise InvalidRequest(
            f"environment_variables take {total} bytes together; at most {ENV_TOTAL_BYTES} are allowed"
        )

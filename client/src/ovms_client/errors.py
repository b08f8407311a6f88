"""Errors that end the client, each tied to the exit code documented in README.md."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    CONFIG = 2
    SERVER_NOT_READY = 3
    INPUT = 4
    INFERENCE = 5


class ClientError(Exception):
    """Base of every error the client reports to the user and exits on."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(ClientError):
    """A profile, env file, environment variable or flag has a value that cannot be used."""

    exit_code = ExitCode.CONFIG


class ServerNotReadyError(ClientError):
    """The model did not become ready within ready_timeout."""

    exit_code = ExitCode.SERVER_NOT_READY


class InputError(ClientError):
    """An input source could not be opened or read."""

    exit_code = ExitCode.INPUT


class InferenceError(ClientError):
    """The server rejected a request or answered with something the adapter cannot read.

    Retrying would fail the same way on every frame, so this ends the run.
    """

    exit_code = ExitCode.INFERENCE


class ServerUnavailable(Exception):
    """The server cannot answer right now (down, restarting, model reloading): retry later."""

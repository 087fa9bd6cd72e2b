"""One line a person can act on for every way a call can fail, instead of a traceback."""

from __future__ import annotations

import grpc

LOGIN_HINT = "(mp3mesh login EMAIL)"
SERVER_HINT = "is the mesh running there? Set --server or MP3MESH_SERVER"

# Phrases grpc-core puts in the details when it never reached a server.
_UNREACHABLE = ("failed to connect", "connection refused", "dns resolution failed", "socket closed")


class CliError(Exception):
    """A failure the CLI reports as one line, with its exit code."""

    def __init__(self, message: str, *, code: str = "ERROR", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code


def rpc_error(exc: grpc.RpcError, server: str, *, with_token: bool = True) -> CliError:
    """The CliError for a failed call to ``server``. ``with_token``: the call carried the
    stored token, so UNAUTHENTICATED means logging in again."""
    code: grpc.StatusCode = exc.code()
    details = (exc.details() or "").strip()
    return CliError(_message(code, details, server, with_token), code=code.name)


def _message(code: grpc.StatusCode, details: str, server: str, with_token: bool) -> str:
    said = details or code.name.lower().replace("_", " ")
    S = grpc.StatusCode
    if code == S.UNAVAILABLE:
        if any(phrase in details.lower() for phrase in _UNREACHABLE):
            return f"cannot reach {server} ({SERVER_HINT})"
        return f"the mesh is unavailable right now: {said}; try again shortly"
    if code == S.UNAUTHENTICATED:
        return f"{said} {LOGIN_HINT}" if with_token else said
    if code == S.DEADLINE_EXCEEDED:
        return f"no answer from {server} in time; try again"
    if code == S.CANCELLED:
        return f"the call was cancelled: {said}"
    if code == S.UNIMPLEMENTED:
        return f"{server} does not offer this call ({said}): point --server at the mesh's edge"
    if code in (S.UNKNOWN, S.INTERNAL, S.DATA_LOSS):
        return f"the mesh failed ({code.name}): {said}"
    if code == S.ABORTED:
        return f"{said}; try again"
    if code == S.RESOURCE_EXHAUSTED:
        return said
    # INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, FAILED_PRECONDITION,
    # OUT_OF_RANGE: the mesh's own message says what is wrong with the request.
    return said

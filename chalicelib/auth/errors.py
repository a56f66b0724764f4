"""Why a request is refused. Each protocol renders these in its own error format at the HTTP edge.

Messages never hold a credential: they name what is missing or refused, not what was sent.
"""
from __future__ import annotations


class AuthError(Exception):
    status = 500
    code = "INTERNAL_ERROR"  # MLflow's error_code for it

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(AuthError):
    """No credentials where some are needed, or expired/revoked ones (HTTP 401)."""
    status = 401
    code = "UNAUTHENTICATED"


class Forbidden(AuthError):
    """A known caller whose role on the owning project is too low (HTTP 403)."""
    status = 403
    code = "PERMISSION_DENIED"


class AuthUnavailable(AuthError):
    """GitLab unreachable, erroring or too slow: nothing is granted (HTTP 503, fail closed)."""
    status = 503
    code = "TEMPORARILY_UNAVAILABLE"

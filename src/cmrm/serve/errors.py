"""Errors a server answers with: an HTTP status and OpenAI's error body.

Every bad request becomes one :class:`APIError` whose message says what was wrong, what was
received, what is expected and how to fix it; the app turns it into
``{"error": {"message", "type", "param", "code"}}`` with the status, and keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base.errors import CmrmError

_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
    504: "timeout_error",
}


@dataclass(eq=False)
class APIError(CmrmError):
    """A request the server refuses (4xx) or cannot finish (5xx)."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        """OpenAI's error schema."""
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)

"""Browser sessions: the caller's GitLab token inside an encrypted, authenticated cookie value.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived with HKDF from the
configured secret, so the same secret on every server (every Lambda instance) reads every cookie,
and a cookie altered, forged or older than ``SESSION_TTL`` is no session at all.
"""
from __future__ import annotations

import base64
import json
from typing import Any

SESSION_TTL = 8 * 3600  # seconds a sign-in lasts (GitLab's own revocation is checked every cache TTL)
_INFO = b"stacflow session cookie v1"


class SessionCodec:
    def __init__(self, secret: bytes) -> None:
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, token: str, **extra: Any) -> str:
        return self._fernet.encrypt(json.dumps({"t": token, **extra}).encode()).decode("ascii")

    def open(self, value: str) -> dict[str, Any] | None:
        """The sealed document, or None for anything forged, altered, expired or malformed."""
        from cryptography.fernet import InvalidToken
        try:
            doc = json.loads(self._fernet.decrypt(value.encode("ascii"), ttl=SESSION_TTL))
        except (InvalidToken, ValueError, UnicodeError):
            return None
        return doc if isinstance(doc, dict) and isinstance(doc.get("t"), str) else None

"""Standard Webhooks signatures (https://www.standardwebhooks.com; docs/webhooks.md): the
secret's format, and the signature every webhook request carries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)
"""How long a secret's key may be, in bytes (the specification's bounds)."""


def signing_key(secret: str) -> bytes:
    """The key of a `whsec_<base64>` secret. Raises ValueError for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"expected {SECRET_PREFIX} and base64 (voxkeepctl webhooks secret)")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError(f"not base64 after {SECRET_PREFIX}") from None
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"the key must be {low} to {high} bytes, not {len(key)}")
    return key


def new_secret() -> str:
    """A fresh secret in the specification's format: 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(key: bytes, event_id: str, timestamp: int, payload: bytes) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of
    `{id}.{timestamp}.{payload}`."""
    signed = f"{event_id}.{timestamp}.".encode() + payload
    return "v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()

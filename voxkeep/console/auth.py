"""Who may use the console (docs/console.md): bearer tokens from `VOXKEEP_CONSOLE_TOKENS`, each
read-only or admin. Tokens are compared in constant time and never logged or echoed."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Literal

from voxkeep.core.errors import ConfigError

Role = Literal["read", "admin"]
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")


@dataclass(frozen=True, slots=True)
class ConsoleToken:
    role: Role
    secret: str

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"ConsoleToken(role={self.role!r})"


def parse_tokens(setting: str) -> list[ConsoleToken]:
    """`read:TOKEN,admin:TOKEN,…` as `VOXKEEP_CONSOLE_TOKENS` holds them."""
    tokens = []
    for part in (p.strip() for p in setting.split(",")):
        if not part:
            continue
        role, colon, secret = part.partition(":")
        if not colon or role not in ("read", "admin"):
            raise ConfigError("VOXKEEP_CONSOLE_TOKENS: each entry is read:TOKEN or admin:TOKEN")
        if not _TOKEN.match(secret):
            raise ConfigError(
                "VOXKEEP_CONSOLE_TOKENS: a token has 16 to 256 letters, digits or ._~+/=-"
            )
        tokens.append(ConsoleToken("admin" if role == "admin" else "read", secret))
    return tokens


def role_of(tokens: list[ConsoleToken], presented: str) -> Role | None:
    """The role of the token presented, or None. Every token is compared, in constant time, so
    the answer's timing says nothing about which (or how much of one) matched."""
    found: Role | None = None
    given = presented.encode()
    for token in tokens:
        if hmac.compare_digest(token.secret.encode(), given):
            found = token.role
    return found


def bearer_token(header: str) -> str:
    """The token of an `Authorization: Bearer TOKEN` header, exactly as sent: only HTTP's own
    spaces and tabs are trimmed, never other Unicode whitespace (a token followed by a
    no-break space is another token). Empty for any other header."""
    scheme, _, rest = header.strip(" \t").partition(" ")
    return rest.strip(" \t") if scheme.lower() == "bearer" else ""

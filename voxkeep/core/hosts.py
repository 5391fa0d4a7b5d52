"""Who a request on a local server is addressed to: a page on another domain that resolves to
127.0.0.1 (DNS rebinding) reaches a loopback server with its own name as `Host`."""

from __future__ import annotations

from yarl import URL

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(header: str) -> str | None:
    """The name in a `Host` header, without its port; None for one that does not parse."""
    try:
        return URL(f"http://{header}").host
    except ValueError:
        return None


def addressed_to_loopback(header: str) -> bool:
    return host_name(header) in LOOPBACK_NAMES

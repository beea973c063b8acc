"""Keeping secrets out of every text the library shows (pure, no I/O).

A secret is anything that authenticates: API keys (RelayDance, WaveSpeed, asset providers), the
webhook secret, the password in a URL. Servers may echo them back (a 401 body quoting the key, a
proxy's error page), so text a server wrote is scrubbed before it reaches an exception, a log
line or a message: every known secret is replaced by ``[redacted]``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "credential_values",
    "contains_secret",
    "is_credential_header",
    "scrub",
    "scrub_value",
    "url_for_display",
]

REDACTED = "[redacted]"

# Shorter values are not scrubbed: replacing "k" everywhere would garble every message, and a
# value that short is no secret worth the name.
_MIN_SECRET = 6
_CREDENTIAL_WORDS = ("auth", "key", "token", "secret", "cookie", "signature", "password")


def is_credential_header(name: str) -> bool:
    """Whether a header carries credentials (``Authorization``, ``x-api-key``, cookies…)."""
    lower = name.lower()
    return any(word in lower for word in _CREDENTIAL_WORDS)


def credential_values(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The secrets in a request's headers (for ``Bearer X``, both the whole value and ``X``)."""
    found: list[str] = []
    for name, value in headers.items():
        if not is_credential_header(name) or not value:
            continue
        found.append(value)
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in ("bearer", "basic", "token"):
            found.append(token.strip())
    return tuple(found)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (of at least 6 characters) replaced by ``[redacted]``."""
    for secret in sorted(set(secrets), key=len, reverse=True):  # longest first: no partial leak
        if len(secret) >= _MIN_SECRET and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def contains_secret(text: str, secrets: Iterable[str]) -> bool:
    """Whether ``text`` holds any secret (of at least 6 characters) whole."""
    for secret in secrets:  # noqa: SIM110 - a plain loop: each poll's id is checked (no generator)
        if len(secret) >= _MIN_SECRET and secret in text:
            return True
    return False


def scrub_value(value: Any, secrets: Iterable[str]) -> Any:
    """A decoded JSON value with every string scrubbed (mappings and lists walked)."""
    known = tuple(secrets)
    if not known:
        return value
    if isinstance(value, str):
        return scrub(value, known)
    if isinstance(value, Mapping):
        return {scrub(str(k), known): scrub_value(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(item, known) for item in value]
    return value


def url_for_display(url: str) -> str:
    """``url`` without user info, query or fragment (signed URLs carry their secret there)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))

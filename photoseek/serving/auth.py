"""API keys (bearer tokens) and signed thumbnail links.

Keys come from `$PHOTOSEEK_API_KEYS` (comma-separated) or a file with one key per line; only their SHA-256
digests are kept in memory and compared in constant time. A browser cannot put a bearer token on an <img>, so
search results carry thumbnail links signed with a per-service secret (HMAC of id, size and expiry).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from pathlib import Path

KEYS_ENV = "PHOTOSEEK_API_KEYS"
MIN_KEY_CHARS = 16
LINK_SECONDS = 3600


class AuthError(PermissionError):
    """Missing or wrong key (HTTP 401, gRPC UNAUTHENTICATED)."""


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def peer_is_loopback(peer: str | None) -> bool:
    """A gRPC peer string ("ipv4:127.0.0.1:5432", "ipv6:[::1]:5432", "unix:...") names this machine."""
    if not peer:
        return False
    kind, _, rest = peer.partition(":")
    if kind == "unix":
        return True
    host = rest.rsplit(":", 1)[0].strip("[]") if kind in ("ipv4", "ipv6") else ""
    return is_loopback(host)


def load_keys(keys_file: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    """Keys from the file (one per line, # comments) or else from $PHOTOSEEK_API_KEYS; too-short keys are refused."""
    env = os.environ if env is None else env
    if keys_file:
        lines = Path(keys_file).read_text().splitlines()
        keys = [k.strip() for k in lines if k.strip() and not k.strip().startswith("#")]
    else:
        keys = [k.strip() for k in env.get(KEYS_ENV, "").split(",") if k.strip()]
    short = [k for k in keys if len(k) < MIN_KEY_CHARS]
    if short:
        raise ValueError(f"API keys must be at least {MIN_KEY_CHARS} characters ({len(short)} too short); "
                         f"make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    return keys


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyCheck:
    """Accepts a request when keys are off or its bearer token is one of the keys."""

    def __init__(self, key_digests: list[str], link_secret: str | None = None) -> None:
        self.digests = [bytes.fromhex(d) for d in key_digests]
        self.secret = (link_secret or secrets.token_hex(32)).encode()

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def check_header(self, authorization: str | None) -> None:
        if not self.enabled:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        self.check_token(token.strip())

    def check_token(self, token: str) -> None:
        if not self.enabled:
            return
        candidate = hashlib.sha256(token.encode()).digest()
        ok = False
        for d in self.digests:  # no early exit: the time taken does not say which key was close
            ok |= hmac.compare_digest(candidate, d)
        if not ok:
            raise AuthError("invalid API key")

    # --- signed links ------------------------------------------------------------------------------
    def _sign(self, id: str, side: int, expires: int) -> str:
        return hmac.new(self.secret, f"{id}:{side}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def thumbnail_url(self, id: str, side: int = 256, now: float | None = None) -> str:
        url = f"/v1/photos/{id}/thumbnail?size={side}"
        if not self.enabled:
            return url
        expires = int((now or time.time()) + LINK_SECONDS)
        return f"{url}&expires={expires}&sig={self._sign(id, side, expires)}"

    def check_link(self, id: str, side: int, expires: int | None, sig: str | None, now: float | None = None) -> bool:
        if expires is None or not sig or expires < (now or time.time()):
            return False
        return hmac.compare_digest(self._sign(id, side, expires), sig)

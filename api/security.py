"""Passwords (scrypt) and bearer tokens (HS256 JWTs with audience, issuer and expiry).

Token decoding pins the algorithm list to HS256, so ``alg=none`` and algorithm-confusion
tokens are refused, and requires ``exp``, ``iat``, ``sub``, ``aud``, ``iss`` and ``pwd`` (a stamp
of the password hash: changing a password signs out every other session).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
AUDIENCE = "alphaforge"
ISSUER = "alphaforge-api"

# scrypt cost: 2**14 x 8 x 1 takes ~16 MiB and ~40 ms; stored with each hash so it can rise.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )


def hash_password(password: str) -> str:
    """A self-describing scrypt hash: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; constant-time comparison."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# A hash to verify against when the user does not exist, so timing does not tell.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: whose it is and until when."""

    user_id: int
    expires_at: datetime
    password_stamp: str


class InvalidTokenError(Exception):
    """The token is missing, malformed, forged, expired or meant for someone else."""


def password_stamp(password_hash: str, key: str) -> str:
    """A short keyed digest of a user's stored password hash, carried in their tokens: a new
    password (a new salt, so a new hash) makes every token issued before it invalid."""
    digest = hmac.new(key.encode(), password_hash.encode(), hashlib.sha256).hexdigest()
    return digest[:16]


def create_access_token(user_id: int, key: str, ttl: timedelta, *, password_hash: str) -> str:
    """A signed token for ``user_id`` valid for ``ttl`` and until the password changes."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "pwd": password_stamp(password_hash, key),
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(8),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(token: str, key: str) -> TokenClaims:
    """Verify signature, algorithm, audience, issuer and expiry; raise InvalidTokenError."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "pwd"]},
        )
        user_id = int(claims["sub"])
        stamp = str(claims["pwd"])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidTokenError(str(exc)) from exc
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    return TokenClaims(user_id=user_id, expires_at=expires, password_stamp=stamp)

"""Which ``[[web.users]]`` password hashes we accept, and a dummy of the same cost for unknown names.

Hashes are werkzeug's ``method$salt$hex`` format (what ``autopublish hash-password`` prints).
Minimum costs follow OWASP's Password Storage Cheat Sheet (2023): scrypt N=2^14 with r=8,
PBKDF2-HMAC-SHA256 600,000 iterations, PBKDF2-HMAC-SHA512 210,000. An upper bound keeps a
typo from making every sign-in take minutes or gigabytes.
"""

from __future__ import annotations

import re
import secrets

from werkzeug.security import DEFAULT_PBKDF2_ITERATIONS, generate_password_hash

MIN_SCRYPT_N = 2**14
MAX_SCRYPT_N = 2**20
MIN_SCRYPT_R = 8
MAX_SCRYPT_MEMORY = 1 << 30  # bytes: 128 * N * r * p
MIN_PBKDF2 = {"sha256": 600_000, "sha512": 210_000}
MAX_PBKDF2 = 10_000_000
DIGEST_HEX = {"scrypt": 128, "sha256": 64, "sha512": 128}  # werkzeug's hex digest lengths


def password_hash_problem(value: str) -> str | None:
    """What is wrong with a stored hash, in plain words; None when it is acceptable."""
    parts = value.strip().split("$")
    if len(parts) != 3 or not all(parts):
        return 'is not a password hash (expected "method$salt$hash", as printed by autopublish hash-password)'
    method, _salt, digest = parts
    name, *args = method.split(":")
    if name == "scrypt":
        problem = _scrypt_problem(args)
        expected = DIGEST_HEX["scrypt"]
    elif name == "pbkdf2":
        problem = _pbkdf2_problem(args)
        expected = DIGEST_HEX.get(args[0] if args else "sha256", 0)
    else:
        return f'uses the hash method "{name}", which autopublish does not accept (only scrypt and pbkdf2)'
    if problem:
        return problem
    if not re.fullmatch(r"[0-9a-f]+", digest) or len(digest) != expected:
        return "is damaged: its last part is not the hash this method makes (copy the whole line again)"
    return None


def _scrypt_problem(args: list[str]) -> str | None:
    if not args:
        return None  # werkzeug's default, N=2^15 r=8 p=1
    if len(args) != 3 or not all(a.isdigit() for a in args):
        return 'has a damaged scrypt method (expected "scrypt:N:r:p")'
    n, r, p = (int(a) for a in args)
    if n < MIN_SCRYPT_N or r < MIN_SCRYPT_R or p < 1:
        return f"is too cheap to guess against (scrypt N={n} r={r} p={p}; at least N={MIN_SCRYPT_N} r={MIN_SCRYPT_R} p=1)"
    if n > MAX_SCRYPT_N or n & (n - 1) or 128 * n * r * p > MAX_SCRYPT_MEMORY:
        return f"asks for an unreasonable scrypt cost (N={n} r={r} p={p}; N must be a power of two up to {MAX_SCRYPT_N}, memory at most 1 GiB)"
    return None


def _pbkdf2_problem(args: list[str]) -> str | None:
    digest = args[0] if args else "sha256"
    if digest not in MIN_PBKDF2 or len(args) > 2:
        return f'uses pbkdf2 with "{":".join(args)}"; only pbkdf2:sha256 and pbkdf2:sha512 are accepted'
    if len(args) < 2:
        iterations = DEFAULT_PBKDF2_ITERATIONS
    elif args[1].isdigit():
        iterations = int(args[1])
    else:
        return 'has a damaged pbkdf2 method (expected "pbkdf2:sha256:ITERATIONS")'
    if iterations < MIN_PBKDF2[digest]:
        return f"is too cheap to guess against (pbkdf2:{digest} with {iterations} iterations; at least {MIN_PBKDF2[digest]})"
    if iterations > MAX_PBKDF2:
        return f"asks for an unreasonable pbkdf2 cost ({iterations} iterations; at most {MAX_PBKDF2})"
    return None


def dummy_hash_like(stored: str | None) -> str:
    """A hash of a random password with the same method and cost as ``stored`` (werkzeug's default without one).

    Checked when a sign-in names an unknown account, so that it takes as long as a known one.
    """
    method = stored.split("$", 1)[0] if stored and password_hash_problem(stored) is None else "scrypt"
    return generate_password_hash(secrets.token_hex(16), method=method)

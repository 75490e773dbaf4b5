"""The secret that turns the audit chain's SHA-256 into HMAC-SHA256.

Without a key anyone who can write the database can change an entry and recompute every
hash after it; with one, only a holder of the key can. The key comes from the
environment, never from the database: ``SHENPI_AUDIT_KEY`` (the key itself) or
``SHENPI_AUDIT_KEY_FILE`` (a file with one key per line, the first one signs new entries,
the others still verify older ones: that is how a key is rotated). Each entry records the
id of the key that signed it, so entries written before a key existed still verify.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import AuditKeyError

KEY_ENV = "SHENPI_AUDIT_KEY"
KEY_FILE_ENV = "SHENPI_AUDIT_KEY_FILE"
MIN_KEY_BYTES = 16
_HOW = "e.g. python -c 'import secrets; print(secrets.token_hex(32))'"


def key_id(secret: bytes) -> str:
    """A public fingerprint of a key, stored with each entry it signs."""
    return hashlib.sha256(b"shenpi-audit-key-id\0" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class AuditKeys:
    """The keys this process knows: ``current`` signs, every one of ``secrets`` verifies."""

    secrets: Mapping[str, bytes] = field(default_factory=dict)
    current: str | None = None

    @classmethod
    def of(cls, *keys: str | bytes, source: str = "audit key") -> AuditKeys:
        """Keys given directly (the first one signs); each must be long enough."""
        secrets: dict[str, bytes] = {}
        for i, key in enumerate(keys):
            raw = _raw(key)
            if len(raw) < MIN_KEY_BYTES:
                which = f"{source} (key {i + 1})" if len(keys) > 1 else source
                raise AuditKeyError(
                    f"{which} has {len(raw)} bytes; use at least {MIN_KEY_BYTES} "
                    f"random bytes ({_HOW})"
                )
            secrets.setdefault(key_id(raw), raw)
        current = key_id(_raw(keys[0])) if keys else None
        return cls(secrets, current)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuditKeys:
        env = os.environ if environ is None else environ
        direct, path = env.get(KEY_ENV), env.get(KEY_FILE_ENV)
        if direct and path:
            raise AuditKeyError(f"set either {KEY_ENV} or {KEY_FILE_ENV}, not both")
        if direct:
            return cls.of(direct.strip(), source=KEY_ENV)
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise AuditKeyError(
                    f"{KEY_FILE_ENV}={path}: cannot read the key file: {exc}"
                ) from None
            keys = [ln.strip() for ln in text.splitlines()]
            keys = [k for k in keys if k and not k.startswith("#")]
            if not keys:
                raise AuditKeyError(f"{KEY_FILE_ENV}={path}: the file holds no key ({_HOW})")
            return cls.of(*keys, source=f"{KEY_FILE_ENV}={path}")
        return cls()

    def secret(self, kid: str | None) -> bytes | None:
        """The key with id ``kid`` (None for plain SHA-256); KeyError if not configured."""
        return None if kid is None else self.secrets[kid]

    @property
    def signing(self) -> bytes | None:
        return self.secret(self.current)


def _raw(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key

"""Sealing the originals at rest: AES-GCM under a per-entry data key.

An entry's sealed original (the raw form payload or e-mail bytes) and the raw
bytes of its thread's replies are encrypted with the entry's own random
256-bit data key; that key is stored wrapped (encrypted) with the deployment's
key-encryption key. A database dump then shows no personal data, and deleting
the entry's wrapped key destroys its originals while their SHA-256 (in the
hash chains, the idempotency keys) stays verifiable.

A sealed value is ``nonce (12 bytes) || ciphertext || tag``; the associated
data binds it to its place, so a blob moved to another row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32
WRAPPED_KEY_CONTEXT = b"intake entry data key v1"


class SealError(ValueError):
    """A sealed value does not open: wrong key, another row's blob, or damaged."""


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``key``, bound to ``context`` (associated data)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, sealed: bytes, context: bytes) -> bytes:
    """The plaintext of :func:`seal`'s ``sealed``; :class:`SealError` when it does not open."""
    sealed = bytes(sealed)
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
    except (InvalidTag, ValueError):
        raise SealError("sealed value does not open with this key and context") from None


def wrap_key(key_encryption_key: bytes, data_key: bytes) -> bytes:
    """``data_key`` encrypted under the deployment's key-encryption key, for storing."""
    return seal(key_encryption_key, data_key, WRAPPED_KEY_CONTEXT)


def unwrap_key(key_encryption_key: bytes, wrapped: bytes) -> bytes:
    """The data key of :func:`wrap_key`'s ``wrapped``; :class:`SealError` when it does not open."""
    return unseal(key_encryption_key, wrapped, WRAPPED_KEY_CONTEXT)


def original_context(sha256: str) -> bytes:
    """The associated data of sealed bytes (a raw message or payload, an attachment, a
    quarantined message): their plaintext's SHA-256 (hex)."""
    return b"intake original " + sha256.encode("ascii")

"""ECDSA P-256 / SHA-256 signature verification, for SendGrid's signed webhooks.

Keys are the base64 DER SubjectPublicKeyInfo SendGrid hands out (PEM armour accepted);
signatures are base64 DER. The arithmetic is the ``cryptography`` package's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key


class PublicKeyError(ValueError):
    """The configured public key is not a P-256 public key."""


@dataclass(frozen=True)
class PublicKey:
    """A P-256 public key."""

    key: ec.EllipticCurvePublicKey

    @classmethod
    def load(cls, text: str) -> PublicKey:
        """Read a base64 DER SubjectPublicKeyInfo (with or without PEM armour)."""
        body = "".join(
            line.strip() for line in text.strip().splitlines() if not line.startswith("-----")
        )
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise PublicKeyError("public key is not valid base64") from None
        try:
            key = load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm):
            raise PublicKeyError("public key is not a DER SubjectPublicKeyInfo") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise PublicKeyError("public key is not a P-256 (prime256v1) key")
        return cls(key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and (
            self.key.public_numbers() == other.key.public_numbers()
        )

    def __hash__(self) -> int:
        return hash(self.key.public_numbers())


def verify(key: PublicKey, message: bytes, signature: bytes) -> bool:
    """Return True when ``signature`` (DER) signs SHA-256(``message``) under ``key``."""
    try:
        key.key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_b64(key: PublicKey, message: bytes, signature_b64: str) -> bool:
    """Verify a base64 signature; malformed base64 is simply not a valid signature."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify(key, message, signature)

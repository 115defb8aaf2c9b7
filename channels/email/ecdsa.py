"""ECDSA P-256 / SHA-256 signature verification, for SendGrid's signed webhooks.

Pure standard-library code (the project has no cryptography dependency). It only verifies, so
it handles public values only and timing does not leak secrets. Keys are the base64 DER
SubjectPublicKeyInfo SendGrid hands out (PEM armour accepted); signatures are base64 DER.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

# NIST P-256 (secp256r1), SEC 2 section 2.4.2.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

# DER of SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) ... }
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")

Point = tuple[int, int] | None  # None is the point at infinity


class PublicKeyError(ValueError):
    """The configured public key is not a P-256 public key."""


@dataclass(frozen=True)
class PublicKey:
    """A P-256 public key (an affine point on the curve)."""

    x: int
    y: int

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
        if len(der) != len(_SPKI_PREFIX) + 65 or not der.startswith(_SPKI_PREFIX):
            raise PublicKeyError("public key is not an uncompressed P-256 SubjectPublicKeyInfo")
        point = der[len(_SPKI_PREFIX) :]
        if point[0] != 0x04:
            raise PublicKeyError("public key point is not uncompressed")
        x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
        if not (x < P and y < P and (y * y - (x * x * x + A * x + B)) % P == 0):
            raise PublicKeyError("public key point is not on the P-256 curve")
        return cls(x, y)


def parse_der_signature(signature: bytes) -> tuple[int, int] | None:
    """Return (r, s) from a DER ECDSA-Sig-Value, or None when it is not strict DER."""
    if len(signature) < 8 or signature[0] != 0x30 or signature[1] != len(signature) - 2:
        return None
    values: list[int] = []
    index = 2
    for _ in range(2):
        if index + 2 > len(signature) or signature[index] != 0x02:
            return None
        length = signature[index + 1]
        start, end = index + 2, index + 2 + length
        if length == 0 or length > 33 or end > len(signature):
            return None
        raw = signature[start:end]
        # Strict DER: positive, minimally encoded.
        if raw[0] & 0x80 or (length > 1 and raw[0] == 0 and not raw[1] & 0x80):
            return None
        values.append(int.from_bytes(raw, "big"))
        index = end
    if index != len(signature):
        return None
    return values[0], values[1]


def verify(key: PublicKey, message: bytes, signature: bytes) -> bool:
    """Return True when ``signature`` (DER) signs SHA-256(``message``) under ``key``."""
    parsed = parse_der_signature(signature)
    if parsed is None:
        return False
    r, s = parsed
    if not (1 <= r < N and 1 <= s < N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, N)
    point = _add(_multiply(e * w % N, G), _multiply(r * w % N, (key.x, key.y)))
    return point is not None and point[0] % N == r


def verify_b64(key: PublicKey, message: bytes, signature_b64: str) -> bool:
    """Verify a base64 signature; malformed base64 is simply not a valid signature."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify(key, message, signature)


def _add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    x1, y1 = p1
    x2, y2 = p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


def _multiply(k: int, point: Point) -> Point:
    result: Point = None
    addend = point
    while k:
        if k & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        k >>= 1
    return result

"""The server's Ed25519 signer: libsodium's signatures are OpenSSL's, byte for byte, and verify."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from powermeter.infra.security import Signer, verify_signature

SIGNER = Signer("unit-test-secret-0123456789abcdef0123456789")


@given(st.binary(max_size=2048))
def test_libsodium_and_openssl_sign_the_same_bytes(message: bytes) -> None:
    fast = SIGNER.sign(message)
    assert fast == SIGNER.sign_with_openssl(message)
    assert verify_signature(SIGNER.public_key_pem(), message, fast)


def test_the_fast_signer_is_in_use_and_a_changed_message_fails() -> None:
    assert SIGNER._sodium_sk is not None  # pynacl is a dependency: the ~10 µs saving is taken
    sig = SIGNER.sign(b"tree head")
    assert not verify_signature(SIGNER.public_key_pem(), b"tree heaD", sig)
    assert len(sig) == 64

"""Standard Webhooks signatures: the HMAC set up once per key is the HMAC
(every key length, several secrets), and a receiver's library accepts it."""

from __future__ import annotations

import base64
import hmac
import os
import time

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from router.outbound import signing


@pytest.mark.parametrize("size", [1, 24, 32, 63, 64, 65, 100])
def test_the_mac_is_hmac_sha256_for_every_key_length(size: int) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(size)).decode()
    for content in (b"", b"x", os.urandom(700)):
        expected = hmac.digest(signing.key(secret), content, "sha256")
        assert signing.mac(secret, content) == expected
        assert signing.mac(secret, content) == expected  # the key's states are not consumed


def test_every_secret_signs_and_a_receiver_verifies_with_either() -> None:
    old, new = (f"whsec_{base64.b64encode(os.urandom(32)).decode()}" for _ in range(2))
    body = orjson.dumps({"type": "contact.routed", "data": {"n": 1}})
    # the library checks the timestamp against its clock: signed now
    headers = signing.headers("msg_1", int(time.time()), body, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"type": "contact.routed", "data": {"n": 1}}
    other = Webhook(f"whsec_{base64.b64encode(os.urandom(32)).decode()}")
    with pytest.raises(Exception, match="(?i)signature"):
        other.verify(body, headers)


@pytest.mark.parametrize("size", [1, 32, 64, 65, 100])
def test_the_signature_header_is_hmac_sha256_of_id_timestamp_and_body(size: int) -> None:
    secrets = ["whsec_" + base64.b64encode(os.urandom(n)).decode() for n in (size, 32)]
    for body in (b"", b'{"type":"contact.routed"}', os.urandom(900)):
        content = b"msg_1." + b"1700000000." + body
        expected = " ".join(
            "v1," + base64.b64encode(hmac.digest(signing.key(s), content, "sha256")).decode()
            for s in secrets
        )
        assert signing.signature("msg_1", 1700000000, body, secrets) == expected
        assert signing.signature("msg_1", 1700000000, body, secrets[:1]) == expected.split()[0]
        assert signing.headers("msg_1", 1700000000, body, secrets) == {
            "content-type": "application/json",
            "webhook-id": "msg_1",
            "webhook-timestamp": "1700000000",
            "webhook-signature": expected,
        }

"""Every provider kind is registered, builds from config, refuses unknown
options, and never lets anything but a RouterError escape ``parse`` or
``handshake``."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapters
from adapters.base import AdapterSpec
from router.errors import ConfigError, RouterError
from tests.support.webhooks import make, request

OPTIONS = {
    "meta": {"verify_token": "t"},
    "postmark": {"username": "u"},
}
PROVIDER_KINDS = sorted(cls.kind for cls in adapters.PROVIDERS)


def test_kinds() -> None:
    assert PROVIDER_KINDS == sorted(
        [
            "zendesk",
            "intercom",
            "slack",
            "mailgun",
            "postmark",
            "sendgrid",
            "twilio-voice",
            "twilio-messaging",
            "meta",
            "amazon-connect",
            "telegram",
            "x",
        ]
    )
    for kind in PROVIDER_KINDS:
        assert adapters.KINDS[kind].kind == kind


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_config_errors(kind: str) -> None:
    with pytest.raises(ConfigError):
        make(kind, ["s"], bogus_option=1, **OPTIONS.get(kind, {}))
    with pytest.raises(ConfigError):
        make(kind, [], **OPTIONS.get(kind, {}))


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=120),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xYzZY",
            "multipart/form-data",
            "text/plain",
            "",
        ]
    ),
    method=st.sampled_from(["POST", "GET"]),
)
def test_parse_never_crashes(kind: str, body: bytes, content_type: str, method: str) -> None:
    adapter = make(kind, ["s"], **OPTIONS.get(kind, {}))
    req = request(body, method=method, content_type=content_type or None)
    for step in (adapter.verify, adapter.parse, adapter.handshake):
        try:
            step(req)
        except RouterError:
            pass


def test_spec_decides_which_secrets_are_usable() -> None:
    spec = AdapterSpec(
        name="c",
        kind="chat",
        secrets=("", "current", " \t"),
        sources=("env:NEXT", "env:CURRENT", "env:PREVIOUS"),
    )
    assert (spec.secrets, spec.sources, spec.dropped) == (
        ("current",),
        ("env:CURRENT",),
        ("env:NEXT", "env:PREVIOUS"),
    )
    assert make("chat", ["", "s"]).secrets == ("s",)
    with pytest.raises(ConfigError, match=r"'c' \(chat\).*empty: secrets\[0\], secrets\[1\]"):
        AdapterSpec(name="c", kind="chat", secrets=("", "  "))
    with pytest.raises(ConfigError, match="none is configured"):
        AdapterSpec(name="c", kind="chat", secrets=())

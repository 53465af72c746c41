from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings

from router.errors import ConfigError, PayloadError, SignatureError
from router.models import WebhookRequest
from tests.support import providers
from tests.support.strategies import form_pairs
from tests.support.webhooks import form_body, make, read, request, robust, run

FORM = "application/x-www-form-urlencoded"
TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
PUBLIC = "https://voice.example.com/v1/webhooks/tv"


def signed(body: bytes, *, url: str = PUBLIC, token: str = TOKEN, **kw: object) -> WebhookRequest:
    headers = {**providers.twilio(url, body, token), **kw.pop("headers", {})}  # type: ignore[dict-item]
    return request(body, headers, url=kw.pop("received", url), content_type=FORM)  # type: ignore[arg-type]


def test_published_vector() -> None:
    adapter = make("twilio-voice", [TOKEN])
    body = form_body(VECTOR_PARAMS)
    req = request(
        body,
        {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
        url=VECTOR_URL,
        content_type=FORM,
    )
    parsed = run(adapter, req)
    [contact] = parsed.contacts
    assert contact.attributes["ivr_digits"] == "1234"
    assert contact.thread_id == "CA1234567890ABCDE"


def test_vector_signed_with_port_is_accepted() -> None:
    adapter = make("twilio-voice", [TOKEN])
    req = request(
        form_body(VECTOR_PARAMS),
        {"X-Twilio-Signature": "kvajT1Ptam85bY51eRf/AJRuM3w="},
        url=VECTOR_URL,
        content_type=FORM,
    )
    adapter.verify(req)


def test_repeated_keys_vector() -> None:
    adapter = make("twilio-voice", [TOKEN])
    body = form_body(
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    )
    req = request(
        body,
        {"X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
        url=VECTOR_URL,
        content_type=FORM,
    )
    adapter.verify(req)


def test_json_body_vector() -> None:
    adapter = make("twilio-voice", [TOKEN])
    body = b'{"property": "value", "boolean": true}'
    url = (
        VECTOR_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    )
    adapter.verify(request(body, {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="}, url=url))
    with pytest.raises(SignatureError):
        adapter.verify(
            request(body + b" ", {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="}, url=url)
        )


def test_wrong_signature_and_missing_header() -> None:
    adapter = make("twilio-voice", [TOKEN])
    body = read("twilio_call.txt")
    with pytest.raises(SignatureError):
        adapter.verify(signed(body, token="other"))
    with pytest.raises(SignatureError):
        adapter.verify(request(body, url=PUBLIC, content_type=FORM))
    tampered = signed(body)
    with pytest.raises(SignatureError):
        adapter.verify(request(body + b"&Extra=1", tampered.headers, url=PUBLIC, content_type=FORM))


def test_rotated_token() -> None:
    adapter = make("twilio-voice", ["old-token", TOKEN])
    adapter.verify(signed(read("twilio_call.txt")))


def test_public_url_option_behind_proxy() -> None:
    body = read("twilio_call.txt")
    internal = "http://10.0.0.5:8080/v1/webhooks/tv"
    req = signed(body, received=internal)
    with pytest.raises(SignatureError):
        make("twilio-voice", [TOKEN]).verify(req)
    make("twilio-voice", [TOKEN], public_url=PUBLIC).verify(req)


def test_forwarded_headers_only_when_trusted() -> None:
    body = read("twilio_call.txt")
    internal = "http://10.0.0.5:8080/v1/webhooks/tv"
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "voice.example.com"}
    req = signed(body, received=internal, headers=headers)
    with pytest.raises(SignatureError):
        make("twilio-voice", [TOKEN]).verify(req)
    make("twilio-voice", [TOKEN], trust_forwarded_headers=True).verify(req)


def test_incoming_call_mapping() -> None:
    adapter = make("twilio-voice", [TOKEN])
    [contact] = run(adapter, signed(read("twilio_call.txt"))).contacts
    assert contact.channel == "voice"
    assert contact.provider == "twilio-voice"
    assert contact.external_id == "CA7d2f0e1c9b8a7f6e5d4c3b2a1f0e9d8c"
    assert [(i.kind, i.value) for i in contact.identifiers] == [("phone", "+12025550147")]
    assert contact.sender_name == "DOE JANE"
    assert contact.attributes["callee"] == "+15005550006"
    assert contact.attributes["forwarded_from"] == "+12025550199"
    assert contact.attributes["caller_name"] == "DOE JANE"
    assert "ivr_digits" not in contact.attributes


def test_gather_result_is_a_new_contact_of_the_same_call() -> None:
    adapter = make("twilio-voice", [TOKEN])
    [contact] = run(adapter, signed(read("twilio_gather.txt"))).contacts
    assert contact.external_id.startswith("CA7d2f0e1c9b8a7f6e5d4c3b2a1f0e9d8c:ivr:")
    assert contact.thread_id == "CA7d2f0e1c9b8a7f6e5d4c3b2a1f0e9d8c"
    assert contact.attributes["ivr_digits"] == "2"
    assert contact.attributes["ivr_speech"] == "billing question"
    assert contact.attributes["queue_seconds"] == 12
    assert contact.text == "billing question"
    again = run(adapter, signed(read("twilio_gather.txt"))).contacts[0]
    assert again.external_id == contact.external_id


def test_status_callback_of_an_ended_call_is_an_outcome_event() -> None:
    parsed = run(make("twilio-voice", [TOKEN]), signed(read("twilio_call_status.txt")))
    assert parsed.contacts == [] and parsed.ignored == 0
    [event] = parsed.outcomes
    sid = "CA7d2f0e1c9b8a7f6e5d4c3b2a1f0e9d8c"
    assert (event.type, event.event_id, event.thread_id) == ("closed", f"{sid}:completed", sid)
    assert event.at == datetime(2025, 3, 4, 10, 15, 2, tzinfo=UTC)
    assert event.data == {
        "source": "twilio-status-callback",
        "call_status": "completed",
        "call_duration": 184,
    }


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", "closed"),
        ("busy", "abandoned"),
        ("no-answer", "abandoned"),
        ("failed", "abandoned"),
        ("canceled", "abandoned"),
    ],
)
def test_every_end_of_a_call_maps_to_one_outcome(status: str, outcome: str) -> None:
    body = form_body({"CallSid": "CA1", "CallStatus": status, "Timestamp": "not a date"})
    [event] = run(make("twilio-voice", [TOKEN]), signed(body)).outcomes
    assert (event.type, event.at) == (outcome, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"CallStatus": "in-progress", "CallbackSource": "call-progress-events"},
        {"CallStatus": "ringing", "CallbackSource": "call-progress-events"},
        {"CallStatus": "completed", "DialCallStatus": "no-answer"},  # a <Dial> action
        {"CallStatus": "completed", "QueueResult": "hangup"},  # an <Enqueue> action
        {"CallStatus": "completed", "RecordingSid": "RE1"},
        {"CallStatus": "no-answer", "Direction": "outbound-dial"},  # an agent's leg
    ],
)
def test_callbacks_that_are_not_the_end_of_an_inbound_call_are_ignored(
    fields: dict[str, str],
) -> None:
    parsed = run(make("twilio-voice", [TOKEN]), signed(form_body({"CallSid": "CA1", **fields})))
    assert (parsed.contacts, parsed.outcomes, parsed.ignored) == ([], (), 1)


def test_an_ended_call_without_its_sid_is_422() -> None:
    with pytest.raises(PayloadError) as exc:
        run(make("twilio-voice", [TOKEN]), signed(form_body({"CallStatus": "busy"})))
    assert exc.value.fields[0].field == "CallSid"


def test_missing_call_sid_is_422() -> None:
    from router.errors import PayloadError

    body = form_body({"From": "+12025550147", "CallStatus": "ringing"})
    with pytest.raises(PayloadError) as exc:
        run(make("twilio-voice", [TOKEN]), signed(body))
    assert exc.value.fields[0].field == "CallSid"


@pytest.mark.parametrize("value", ["soon", "\u00b9", "\u0663"])  # superscript 1, Arabic 3
def test_bad_queue_time_is_422(value: str) -> None:
    from router.errors import PayloadError

    body = form_body(
        {"CallSid": "CA1", "From": "+12025550147", "CallStatus": "ringing", "QueueTime": value}
    )
    with pytest.raises(PayloadError) as exc:
        run(make("twilio-voice", [TOKEN]), signed(body))
    assert exc.value.fields[0].field == "QueueTime"


def test_wrong_content_type_is_415() -> None:
    from router.errors import UnsupportedMediaType

    adapter = make("twilio-voice", [TOKEN])
    with pytest.raises(UnsupportedMediaType):
        adapter.parse(request(b"{}", content_type="text/plain"))


def test_reply_is_twiml_enqueue_by_default() -> None:
    import uuid

    from router.models import Decision, Routed

    adapter = make("twilio-voice", [TOKEN])
    parsed = run(adapter, signed(read("twilio_call.txt")))
    routed = Routed(
        contact_id=uuid.uuid4(),
        customer_id=None,
        duplicate=False,
        decision=Decision(queue="billing & <vip>", priority=1, ruleset="r1"),
        external_id="CA7d",
    )
    reply = adapter.reply([routed], parsed)
    assert reply.content_type == "text/xml"
    assert b"<Enqueue>billing &amp; &lt;vip&gt;</Enqueue>" in reply.body
    json_adapter = make("twilio-voice", [TOKEN], reply="json")
    assert json_adapter.reply([routed], parsed).content_type == "application/json"


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError):
        make("twilio-voice", [])
    with pytest.raises(ConfigError):
        make("twilio-voice", [TOKEN], public_url="voice.example.com")
    with pytest.raises(ConfigError):
        make("twilio-voice", [TOKEN], reply="xml")
    with pytest.raises(ConfigError):
        make("twilio-voice", [TOKEN], verify_token="x")


@settings(max_examples=150, deadline=None)
@given(pairs=form_pairs(parse_qsl(read("twilio_gather.txt").decode())))
def test_random_forms_only_raise_router_errors(pairs: list[tuple[str, str]]) -> None:
    robust(make("twilio-voice", [TOKEN]), signed(form_body(pairs)))


def test_non_ascii_digits_are_a_payload_error() -> None:
    """``"²".isdigit()`` is true but ``int("²")`` fails: a 422, never a 500."""
    pairs = list(parse_qsl(read("twilio_call.txt").decode().strip(), keep_blank_values=True))
    for name in ("QueueTime",):
        with pytest.raises(PayloadError) as bad:
            run(make("twilio-voice", [TOKEN]), signed(form_body([*pairs, (name, "²")])))
        assert bad.value.fields[0].field == name


def test_with_a_workflow_the_call_is_enqueued_as_a_taskrouter_task() -> None:
    import json
    import uuid
    import xml.etree.ElementTree as ET

    from router.models import Decision, Routed

    workflow = "WW" + "0f" * 16
    adapter = make("twilio-voice", [TOKEN], workflow_sid=workflow, task_timeout=600)
    parsed = run(adapter, signed(read("twilio_call.txt")))
    decision = Decision(
        queue='billing & <vip> "x"',
        priority=70,
        skills=("de", "billing"),
        sla_seconds=30,
        tags=("vip",),
        ruleset="r1",
    )
    routed = Routed(
        contact_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        duplicate=False,
        decision=decision,
        external_id="CA7d",
    )
    reply = adapter.reply([routed], parsed)
    assert reply.content_type == "text/xml"
    enqueue = ET.fromstring(reply.body).find("Enqueue")
    assert enqueue is not None and enqueue.get("workflowSid") == workflow
    assert (enqueue.text or "").strip() == ""  # no queue name beside the task
    task = enqueue.find("Task")
    assert task is not None
    assert (task.get("priority"), task.get("timeout")) == ("70", "600")
    assert json.loads(task.text or "") == {
        "queue": 'billing & <vip> "x"',
        "skills": ["de", "billing"],
        "priority": 70,
        "sla_seconds": 30,
        "contact_id": str(routed.contact_id),
        "customer_id": str(routed.customer_id),
        "channel": "voice",
        "external_id": "CA7d",
        "tags": ["vip"],
    }
    assert b"&lt;vip&gt;" in reply.body  # the JSON is escaped, not markup
    with pytest.raises(ConfigError, match="workflow_sid"):
        make("twilio-voice", [TOKEN], workflow_sid="WQ123")
    with pytest.raises(ConfigError, match="task_timeout"):
        make("twilio-voice", [TOKEN], workflow_sid=workflow, task_timeout=0)

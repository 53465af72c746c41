"""Write N routing inputs as NDJSON (for ``omniroute rules simulate``).

    python bench/make_contacts.py 1000000 > contacts.ndjson

The mix covers every channel and the attributes the sample rules read;
the same N always gives the same file.
"""

from __future__ import annotations

import random
import sys
import uuid

import orjson

SUBJECTS = [
    "Where is my order?",
    "Refund for order 302-1234567",
    "Question about INV-123456",
    "Returned my parcel",
    "Sizes",
    "Money back please",
]
TEXTS = ["hi", "Where is 302-1234567?", "Worst service ever, refund now", "Hallo", "Bonjour"]


def line(rng: random.Random, n: int) -> dict[str, object]:
    channel = rng.choice(["chat", "email", "voice", "social"])
    attributes: dict[str, object] = {}
    contact: dict[str, object] = {"channel": channel, "external_id": f"c-{n}"}
    if channel == "email":
        contact["subject"] = rng.choice(SUBJECTS)
        attributes["to"] = [rng.choice(["support@shop.example", "b2b@shop.example"])]
    elif channel == "voice":
        attributes["ivr_digits"] = rng.choice(["1", "2", "3", "9"])
        attributes["queue_seconds"] = rng.randint(0, 600)
    elif channel == "chat":
        contact["text"] = rng.choice(TEXTS)
        attributes["page_url"] = rng.choice(
            ["https://shop.example/", "https://shop.example/orders/1"]
        )
    else:
        contact["text"] = rng.choice(TEXTS)
        attributes["public"] = rng.random() < 0.5
    contact["attributes"] = attributes
    contact["language"] = rng.choice(["en", "en", "de", "fr"])
    customer: dict[str, object] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "tier": rng.choice([None, None, None, "vip"]),
        "contacts_24h": rng.randint(0, 3),
    }
    hour = rng.randint(0, 23)
    return {
        "contact": contact,
        "customer": customer,
        "now": f"2026-03-0{rng.randint(2, 8)}T{hour:02d}:15:00Z",
    }


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 100_000
    rng = random.Random(count)
    out = sys.stdout.buffer
    for n in range(count):
        out.write(orjson.dumps(line(rng, n), option=orjson.OPT_APPEND_NEWLINE))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

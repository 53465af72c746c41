"""Rules engine throughput: decisions per second for a generated 200-rule ruleset,
the shipped sample rules and a trivial baseline function, in the same run.

    python bench/rules_bench.py [--rules 200] [--contacts 20000]

The baseline only builds a Decision from the channel: the floor cost of
answering at all. "traced" is ``decide`` with the per-rule trace (what the
service records); "untraced" is ``decide(..., explain=False)`` (simulation).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from router.models import CHANNELS, Contact, CustomerContext, Decision, LastContact
from router.rules import load_ruleset, load_ruleset_text

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["refund", "invoice", "broken", "delivery", "password", "cancel", "warranty", "size"]
QUEUES = {"chat": "chat-q", "email": "email-q", "voice": "voice-q", "social": "social-q"}

Decide = Callable[[Contact, CustomerContext, datetime], object]


def generated_rules(count: int) -> str:
    """A ruleset of ``count`` rules over every kind of condition; most never match."""
    rng = random.Random(count)
    lines = ["queues:"]
    lines += [f"  q{n}: {{skills: [s{n}]}}" for n in range(20)]
    lines += [f"  {q}: {{}}" for q in QUEUES.values()]
    lines += [
        "calendars:",
        "  hours: {timezone: Europe/Berlin, hours: {mon-fri: '08:00-18:00'}}",
        "defaults:",
        "  queue: chat-q",
        *(f"  {channel}: {{queue: {queue}}}" for channel, queue in QUEUES.items()),
        "rules:",
    ]
    for n in range(count):
        channel = rng.choice(CHANNELS)
        kind = n % 6
        if kind == 0:
            when = f"contact.channel: {channel}, customer.tier: tier{n}"
        elif kind == 1:
            words = ", ".join(rng.sample(WORDS, 2))
            when = f"contact.channel: {channel}, contact.subject: {{contains_any: [{words}x{n}]}}"
        elif kind == 2:
            when = f"customer.contacts_24h: {{gte: {50 + n}}}"
        elif kind == 3:
            when = f"contact.channel: {channel}, contact.attributes.ivr_digits: '{100 + n}'"
        elif kind == 4:
            when = f"contact.text: {{matches: '\\border-{n}\\b'}}, outside: hours"
        else:
            old = f"{{customer.last.at: {{older_than: {n + 400}d}}}}"
            when = f"any: [{{customer.segment: seg{n}}}, {old}]"
        cont = ", continue: true, route: {tags: [t]}" if n % 25 == 24 else ""
        route = "" if cont else f", route: {{queue: q{n % 20}, priority: {n % 100}}}"
        lines.append(f"  - {{name: r{n}, when: {{{when}}}{cont}{route}}}")
    return "\n".join(lines) + "\n"


def inputs(count: int) -> list[tuple[Contact, CustomerContext, datetime]]:
    rng = random.Random(7)
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    out = []
    for n in range(count):
        channel = rng.choice(CHANNELS)
        contact = Contact(
            channel=channel,
            provider="bench",
            external_id=f"b-{n}",
            subject=" ".join(rng.sample(WORDS, 3)),
            text="Hello, where is my parcel? Order 302-1234567 " * 3,
            attributes={"ivr_digits": str(rng.randint(1, 9))},
        )
        customer = CustomerContext(
            customer_id=uuid.UUID(int=rng.getrandbits(128)),
            known=True,
            tier=rng.choice([None, "gold"]),
            contacts_24h=rng.randint(0, 3),
            last=LastContact(at=now - timedelta(hours=rng.randint(1, 100)), channel="chat"),
        )
        out.append((contact, customer, now))
    return out


def baseline(contact: Contact, customer: CustomerContext, now: datetime) -> Decision:
    return Decision(queue=QUEUES[contact.channel], priority=50, ruleset="baseline")


def rate(decide: Decide, cases: list[tuple[Contact, CustomerContext, datetime]]) -> float:
    for case in cases[:500]:  # warm up
        decide(*case)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for case in cases:
            decide(*case)
        best = max(best, len(cases) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args()

    start = time.perf_counter()
    generated = load_ruleset_text(generated_rules(args.rules), "bench.yaml")
    compile_ms = (time.perf_counter() - start) * 1000
    shipped = load_ruleset([ROOT / "rules"])
    cases = inputs(args.contacts)
    rule_counts = [len(generated.decide(*c).trace) for c in cases[:1000]]

    rows = [
        ("baseline (channel -> queue)", rate(baseline, cases)),
        (
            f"{args.rules} rules, untraced",
            rate(lambda c, cu, t: generated.decide(c, cu, t, explain=False), cases),
        ),
        (f"{args.rules} rules, traced", rate(generated.decide, cases)),
        (
            f"shipped rules/ ({len(shipped.rules)}), untraced",
            rate(lambda c, cu, t: shipped.decide(c, cu, t, explain=False), cases),
        ),
        (f"shipped rules/ ({len(shipped.rules)}), traced", rate(shipped.decide, cases)),
    ]
    print(
        f"{args.contacts:,} contacts; {args.rules} generated rules compiled in {compile_ms:.0f} ms;"
    )
    print(f"rules tried per contact (traced): mean {sum(rule_counts) / len(rule_counts):.0f}")
    base = rows[0][1]
    for name, value in rows:
        print(f"{name:36} {value:>10,.0f} decisions/s  {base / value:6.1f}x baseline time")


if __name__ == "__main__":
    main()

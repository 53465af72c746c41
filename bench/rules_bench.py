"""Rules engine throughput against a hand-written Python baseline, in the same run.

    python bench/rules_bench.py [--rules 200] [--contacts 20000] [--seed 1]

Generates ``--rules`` rules, each testing a channel, a set of customer tiers,
a language, a minimum of contacts in the last 24 hours and a keyword in the
text (the first match decides), and ``--contacts`` contacts. The same rules
are written once as a rules file for omniroute's engine and once as the
baseline: one Python lambda per rule, tried in order, each returning the
rule's Decision. Both must give the same decision for every contact (checked
before timing). Target: the engine at least as fast as the baseline.

"untraced" is ``decide(..., explain=False)``, the throughput path; "traced"
also writes the per-rule trace (every rule tried, in order). The shipped
``rules/`` are timed too.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.models import CHANNELS, Contact, CustomerContext, Decision  # noqa: E402
from router.rules import Ruleset, load_ruleset, load_ruleset_text  # noqa: E402

TIERS = ("bronze", "silver", "gold", "platinum", "vip")
LANGUAGES = ("en", "de", "fr", "es", "it", "nl")
KEYWORDS = (
    "refund", "invoice", "broken", "delivery", "password", "cancel", "warranty", "size",
    "discount", "voucher", "account", "address", "parcel", "damaged", "missing", "late",
    "payment", "subscription", "exchange", "receipt",
)  # fmt: skip
FILLER = ("hello", "please", "my", "order", "the", "help", "thanks", "question", "about", "today")
QUEUES = 20
DEFAULT_QUEUE = {"chat": "chat-q", "email": "email-q", "voice": "voice-q", "social": "social-q"}
SLA = 3600

Case = tuple[Contact, CustomerContext, datetime]
Decide = Callable[[Contact, CustomerContext, datetime], Decision]


@dataclass(frozen=True, slots=True)
class Spec:
    """One generated rule."""

    name: str
    channel: str
    tiers: tuple[str, ...]
    language: str
    least: int
    keyword: str
    queue: str
    priority: int


def specs(count: int, rng: random.Random) -> list[Spec]:
    return [
        Spec(
            name=f"r{n}",
            channel=rng.choice(CHANNELS),
            tiers=tuple(rng.sample(TIERS, rng.randint(1, 3))),
            language=rng.choice(LANGUAGES),
            least=rng.randint(0, 4),
            keyword=rng.choice(KEYWORDS),
            queue=f"q{n % QUEUES}",
            priority=rng.randint(0, 100),
        )
        for n in range(count)
    ]


def rules_file(rules: list[Spec]) -> str:
    lines = ["queues:"]
    lines += [f"  q{n}: {{}}" for n in range(QUEUES)]
    lines += [f"  {q}: {{}}" for q in DEFAULT_QUEUE.values()]
    lines += ["defaults:", "  queue: chat-q", f"  sla: {SLA}"]
    lines += [f"  {channel}: {{queue: {queue}}}" for channel, queue in DEFAULT_QUEUE.items()]
    lines.append("rules:")
    for r in rules:
        lines += [
            f"  - name: {r.name}",
            "    when:",
            f"      contact.channel: {r.channel}",
            f"      customer.tier: [{', '.join(r.tiers)}]",
            f"      contact.language: {r.language}",
            f"      customer.contacts_24h: {{gte: {r.least}}}",
            f"      contact.text: {{contains_any: [{r.keyword}]}}",
            f"    route: {{queue: {r.queue}, priority: {r.priority}}}",
        ]
    return "\n".join(lines) + "\n"


def baseline(rules: list[Spec], version: str) -> Decide:
    """The hand-written router: one lambda per rule, tried in order."""

    def matcher(r: Spec) -> Callable[[Contact, CustomerContext], object]:
        channel, tiers, language, least = r.channel, frozenset(r.tiers), r.language, r.least
        search = re.compile(rf"\b{r.keyword}\b", re.IGNORECASE).search
        return lambda c, cu: (
            c.channel == channel
            and c.language == language
            and cu.tier in tiers
            and cu.contacts_24h >= least
            and search(c.text or "")
        )

    table = [
        (matcher(r), r.queue, r.priority, r.name) for r in rules
    ]  # fmt: skip

    def decide(contact: Contact, customer: CustomerContext, now: datetime) -> Decision:
        for matches, queue, priority, name in table:
            if matches(contact, customer):
                return Decision(
                    queue=queue, priority=priority, sla_seconds=SLA, rule=name, ruleset=version
                )
        return Decision(
            queue=DEFAULT_QUEUE[contact.channel], priority=50, sla_seconds=SLA, ruleset=version
        )

    return decide


def contacts(count: int, rng: random.Random) -> list[Case]:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    out = []
    for n in range(count):
        words = rng.sample(FILLER, 4) + rng.sample(KEYWORDS, 2)
        rng.shuffle(words)
        contact = Contact(
            channel=rng.choice(CHANNELS),
            provider="bench",
            external_id=f"b-{n}",
            language=rng.choice((*LANGUAGES, None)),
            text=" ".join(words).capitalize() + ".",
        )
        customer = CustomerContext(
            customer_id=uuid.UUID(int=rng.getrandbits(128)),
            known=True,
            tier=rng.choice((*TIERS, None)),
            contacts_24h=rng.randint(0, 5),
        )
        out.append((contact, customer, now))
    return out


def untraced(ruleset: Ruleset) -> Decide:
    return lambda c, cu, t: ruleset.decide(c, cu, t, explain=False).decision


def traced(ruleset: Ruleset) -> Decide:
    return lambda c, cu, t: ruleset.decide(c, cu, t).decision


def rate(decide: Decide, cases: list[Case], rounds: int) -> float:
    for case in cases[:500]:  # warm up
        decide(*case)
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for case in cases:
            decide(*case)
        best = max(best, len(cases) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes; the best counts")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    rules = specs(args.rules, rng)
    start = time.perf_counter()
    engine = load_ruleset_text(rules_file(rules), "bench.yaml")
    compile_ms = (time.perf_counter() - start) * 1000
    hand = baseline(rules, engine.version)
    cases = contacts(args.contacts, rng)

    decided = [hand(*case) for case in cases]
    for case, expected in zip(cases, decided, strict=True):
        assert untraced(engine)(*case) == expected, (case, expected)
        assert traced(engine)(*case) == expected, (case, expected)
    matched = sum(d.rule is not None for d in decided)
    print(
        f"{args.contacts:,} contacts, {args.rules} rules (compiled in {compile_ms:.0f} ms,"
        f" indexed by {', '.join(engine.index.fields)}); {matched:,} matched a rule,"
        " the rest the defaults; engine and baseline agree on every decision"
    )

    base = rate(hand, cases, args.rounds)
    fast = rate(untraced(engine), cases, args.rounds)
    slow = rate(traced(engine), cases, args.rounds)
    shipped = load_ruleset([ROOT / "rules"])
    rows = [
        ("hand-written baseline (lambdas)", base),
        ("omniroute engine, untraced", fast),
        ("omniroute engine, traced", slow),
        (
            f"shipped rules/ ({len(shipped.rules)} rules), untraced",
            rate(untraced(shipped), cases, 3),
        ),
        (f"shipped rules/ ({len(shipped.rules)} rules), traced", rate(traced(shipped), cases, 3)),
    ]
    for name, value in rows:
        print(f"{name:42} {value:>10,.0f} decisions/s  {value / base:5.2f}x baseline")
    verdict = "met" if fast >= base else "NOT met"
    print(f"target (untraced engine >= baseline): {verdict}, ratio {fast / base:.2f}")


if __name__ == "__main__":
    main()

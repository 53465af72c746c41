"""Rules engine throughput against a hand-written Python baseline, in the same run,
and how long loading and compiling takes by the number of rules.

    python bench/rules_bench.py [--rules 200] [--contacts 20000] [--seed 1]
    python bench/rules_bench.py --load-only [--load-sizes 200,2000,10000] [--before REV]

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

Loading: one file of N such rules (8 lines each) read and compiled, best of
``--load-rounds`` (wall time), with the fast YAML reader and with the exact
(round-trip) one only, side by side; with ``--before REV`` also the code of
that git revision (``git archive``), in a separate process. The generated
rules repeat values (channels, tiers, minimums, keywords), as real rulesets
do, and a condition met before is compiled once; "no repeats" gives each rule
a minimum and a keyword of its own (and so 10,000 keyword patterns to compile;
Python's re takes some 30 us for each). Targets, for the generated rules:
2,000 rules in under 0.5 s, 10,000 in under 2 s. The round-trip and
``--before`` columns take one run each from 10,000 rules up (about 20 s a run).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
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
from router.rules.loader import build  # noqa: E402

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


LOAD_TARGETS = {2_000: 0.5, 10_000: 2.0}
#: times loading with older code: its router package first on the path
_BEFORE = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
from router.rules import load_ruleset_text
for path, rounds in json.loads(sys.argv[2]):
    text = open(path).read()
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        load_ruleset_text(text, "bench.yaml")
        best = min(best, time.perf_counter() - start)
    print(best, flush=True)
"""


def load_time(text: str, *, exact: bool, rounds: int) -> float:
    """Best wall time of reading and compiling ``text`` (freeing the result not counted)."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        loaded = build([("bench.yaml", "bench.yaml", text)], exact=exact)
        best = min(best, time.perf_counter() - start)
        assert not loaded.errors, loaded.errors[:3]
        del loaded
    return best


def before_times(rev: str, texts: list[str], rounds: list[int]) -> list[float]:
    """Load times of ``texts`` with the rules engine as it was at git revision ``rev``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "router"], capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        paths = []
        for n, text in enumerate(texts):
            path = f"{tmp}/rules-{n}.yaml"
            with open(path, "w") as out:
                out.write(text)
            paths.append(path)
        plan = json.dumps(list(zip(paths, rounds, strict=True)))
        found = subprocess.run(
            [sys.executable, "-c", _BEFORE, tmp, plan], capture_output=True, text=True, check=True
        )
    return [float(line) for line in found.stdout.split()]


def distinct(rules: list[Spec]) -> list[Spec]:
    """The rules with a minimum and a keyword of their own: no condition repeats."""
    return [dataclasses.replace(r, least=n, keyword=f"{r.keyword}{n}") for n, r in enumerate(rules)]


def load_benchmark(sizes: list[int], rounds: int, seed: int, before: str | None) -> None:
    generated = [specs(size, random.Random(seed)) for size in sizes]
    texts = [rules_file(rules) for rules in generated]
    slow_rounds = [1 if size >= 10_000 else rounds for size in sizes]
    old = before_times(before, texts, slow_rounds) if before else None
    head = f"{'rules':>7}  {'lines':>7}"
    if old is not None:
        head += f"  {'before (' + str(before) + ')':>18}"
    print(f"load + compile, best of {rounds} (one run for the slow readers from 10,000 rules);")
    print("'no repeats': each rule's minimum and keyword its own (no condition compiled twice)")
    columns = ("round-trip reader", "now", "speed-up", "no repeats")
    print(f"{head}  {columns[0]:>17}  {columns[1]:>8}  {columns[2]:>8}  {columns[3]:>10}  target")
    for n, (size, text) in enumerate(zip(sizes, texts, strict=True)):
        exact = load_time(text, exact=True, rounds=slow_rounds[n])
        now = load_time(text, exact=False, rounds=rounds)
        unique = load_time(rules_file(distinct(generated[n])), exact=False, rounds=rounds)
        row = f"{size:>7,}  {text.count(chr(10)):>7,}"
        if old is not None:
            row += f"  {old[n]:>16.2f} s"
        reference = old[n] if old is not None else exact
        target = LOAD_TARGETS.get(size)
        verdict = "" if target is None else f"< {target} s: {'met' if now < target else 'NOT met'}"
        print(
            f"{row}  {exact:>15.2f} s  {now:>6.3f} s  {reference / now:>7.1f}x"
            f"  {unique:>8.3f} s  {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes; the best counts")
    parser.add_argument(
        "--load-sizes", default="200,2000,10000", help="numbers of rules to time loading for"
    )
    parser.add_argument("--load-rounds", type=int, default=3)
    parser.add_argument("--load-only", action="store_true", help="time loading only")
    parser.add_argument("--before", help="git revision to time loading with as well")
    args = parser.parse_args()

    sizes = [int(size) for size in args.load_sizes.split(",") if size]
    if args.load_only:
        load_benchmark(sizes, args.load_rounds, args.seed, args.before)
        return
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
    print()
    load_benchmark(sizes, args.load_rounds, args.seed, args.before)


if __name__ == "__main__":
    main()

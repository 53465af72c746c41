"""The test cases written in rules files (``tests:``), checked at load and run
by ``omniroute rules test``.

A case gives a contact (``channel`` is enough), optionally a customer and a
moment (``now``), and what the decision must be. Unset parts get fixed
defaults so that a case always decides the same way:

* ``contact.provider`` is ``test``, ``contact.external_id`` is ``test-<n>``;
* without ``customer:`` the customer is unknown; with it, ``known`` is true
  unless given; the customer id is derived from the test name unless given
  (``id:``), so rollouts put a case always on the same side;
* ``now`` is Monday 2026-01-05 12:00 in ``defaults.timezone``; a time without
  offset is in ``defaults.timezone``; time fields may be written ``2h ago``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from router.errors import RulesTestsFailed
from router.models import Contact, CustomerContext
from router.rules.fields import Catalog, Kind
from router.rules.schema import CaseSpec, ExpectSpec, parse_duration
from router.rules.source import Path, Source

if TYPE_CHECKING:
    from router.rules.engine import Ruleset

#: customer ids of test cases (and simulated lines) are uuid5 in this namespace
NAMESPACE = uuid.UUID("4f6d6e69-726f-7574-6500-000000000001")
DEFAULT_NOW = datetime(2026, 1, 5, 12, 0)

Report = Callable[[Path, str, bool], None]


@dataclass(frozen=True, slots=True)
class Case:
    """A test case ready to run."""

    name: str
    file: str
    line: int
    col: int
    contact: Contact
    customer: CustomerContext
    now: datetime
    expect: ExpectSpec


def relative_times(
    data: Mapping[str, Any], root: str, catalog: Catalog, now: datetime
) -> dict[str, Any]:
    """``data`` with every time field written like ``2h ago`` replaced by the time."""
    out: dict[str, Any] = _copy(data)
    for path in catalog.paths_of_kind(Kind.TIME):
        parts = path.split(".")
        if parts[0] != root:
            continue
        node: Any = out
        for part in parts[1:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get(parts[-1]) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(value, str) and value.endswith(" ago"):
            try:
                node[parts[-1]] = now - timedelta(seconds=parse_duration(value[:-4]))
            except ValueError:
                pass  # left as written: the model reports it
    return out


def _copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _copy(v) for k, v in data.items()}
    return data


def _moment(value: datetime | None, zone: tzinfo) -> datetime:
    moment = value or DEFAULT_NOW
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def customer_context(data: Mapping[str, Any] | None, *, seed: str) -> CustomerContext:
    """A customer from partial data: known when given, id derived from ``seed``."""
    if data is None:
        return CustomerContext(customer_id=uuid.uuid5(NAMESPACE, seed), known=False)
    fields = dict(data)
    if "id" in fields:
        fields["customer_id"] = fields.pop("id")
    if "customer_id" not in fields:
        fields["customer_id"] = uuid.uuid5(NAMESPACE, seed)
    fields.setdefault("known", True)
    return CustomerContext.model_validate(fields)


def compile_case(
    spec: CaseSpec,
    source: Source,
    path: Path,
    *,
    catalog: Catalog,
    timezone: tzinfo,
    queues: Collection[str],
    rules: Collection[str],
    report: Report,
) -> Case | None:
    """The runnable case, or None after reporting what is wrong with it."""
    ok = True
    now = _moment(spec.now, timezone)
    contact_data = relative_times(spec.contact, "contact", catalog, now)
    contact_data.setdefault("provider", "test")
    contact_data.setdefault("external_id", f"test-{path[-1]}")
    contact: Contact | None = None
    customer: CustomerContext | None = None
    try:
        contact = Contact.model_validate(contact_data)
    except ValidationError as exc:
        ok = False
        for error in exc.errors():
            where = (*path, "contact", *error["loc"])
            report(where, f"contact.{'.'.join(map(str, error['loc']))}: {error['msg']}", False)
    try:
        customer_data = (
            None
            if spec.customer is None
            else relative_times(spec.customer, "customer", catalog, now)
        )
        customer = customer_context(customer_data, seed=f"{source.name}:{spec.name}")
    except ValidationError as exc:
        ok = False
        for error in exc.errors():
            loc = ["id" if p == "customer_id" else p for p in error["loc"]]
            where = (*path, "customer", *loc)
            report(where, f"customer.{'.'.join(map(str, loc))}: {error['msg']}", False)
    expect = spec.expect
    if expect.queue is not None and expect.queue not in queues:
        report((*path, "expect", "queue"), f"queue {expect.queue!r} is not declared", False)
        ok = False
    if expect.rule is not None and expect.rule not in rules:
        report((*path, "expect", "rule"), f"there is no rule {expect.rule!r}", False)
        ok = False
    if not ok or contact is None or customer is None:
        return None
    line, col = source.position(path)
    return Case(spec.name, source.shown, line, col, contact, customer, now, expect)


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "null" if value is None else repr(value)


def failures(ruleset: Ruleset, case: Case) -> list[str]:
    """What the decision got wrong, one phrase per expectation (empty: passed)."""
    evaluation = ruleset.decide(case.contact, case.customer, case.now)
    decision = evaluation.decision
    expect = case.expect
    wanted = expect.model_fields_set
    wrong: list[str] = []

    def compare(key: str, want: Any, got: Any) -> None:
        if key in wanted and want != got:
            wrong.append(f"expected {key} {_show(want)}, got {_show(got)}")

    compare("queue", expect.queue, decision.queue)
    compare("rule", expect.rule, decision.rule)
    compare("priority", expect.priority, decision.priority)
    compare("sla", expect.sla, decision.sla_seconds)
    compare("preferred_agent", expect.preferred_agent, decision.preferred_agent)
    compare("rollout", expect.rollout, evaluation.rollout)
    if expect.skills is not None:
        compare("skills", sorted(expect.skills), sorted(decision.skills))
    if expect.tags is not None:
        compare("tags", sorted(expect.tags), sorted(decision.tags))
    if wrong and "rule" not in wanted:
        wrong.append(
            f"(decided by {'rule ' + repr(decision.rule) if decision.rule else 'defaults'})"
        )
    return wrong


def run_cases(ruleset: Ruleset) -> tuple[int, list[str]]:
    """(cases run, failure lines as ``file:line:col: test 'name': …``)."""
    lines = []
    for case in ruleset.cases:
        wrong = failures(ruleset, case)
        if wrong:
            lines.append(
                f"{case.file}:{case.line}:{case.col}: test {case.name!r}: {'; '.join(wrong)}"
            )
    return len(ruleset.cases), lines


def require_passing(ruleset: Ruleset) -> Ruleset:
    """``ruleset`` if every test written in its files passes; else
    ``RulesTestsFailed`` naming each failing test (as ``run_cases``)."""
    count, failed = run_cases(ruleset)
    if failed:
        raise RulesTestsFailed(
            f"{len(failed)} of {count} rules tests fail (ruleset {ruleset.version})",
            problems=failed,
        )
    return ruleset

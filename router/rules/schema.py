"""The rules file format as pydantic models: what a supervisor may write.

These models check the shape of a file (keys, types, durations, percentages,
times) and are the base of the JSON Schema that ``omniroute rules schema``
prints for editors (:mod:`router.rules.jsonschema`). What they cannot see
(field names in conditions, declared queues, calendars) the compiler checks
afterwards, with the same file:line:col locations.

Values are taken as YAML 1.2 types them, as editors do: ``priority: "90"`` is
text, not a number, and ``enabled: no`` is text, not false. Each parser here
sits next to the pattern the JSON Schema uses for the same value; the tests
hold the two against each other.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
)

_DURATION_PART = re.compile(r"([0-9]+)\s*(w|d|h|m|s)", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(?:[0-9]+\s*[wdhms]\s*)+$", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PERCENT = re.compile(r"\s*[0-9]+(\.[0-9]+)?\s*%?\s*")

#: JSON Schema patterns (ECMAScript regular expressions, as editors run them)
DURATION_PATTERN = r"^\s*(?:[0-9]+\s*[wdhmsWDHMS]\s*)+$"
PERCENT_PATTERN = r"^\s*0*(?:100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)\s*%?\s*$"
#: a time starts like an ISO date; the rest is left to ``datetime.fromisoformat``, whose
#: leniency (any separator, any of several time and offset forms) no pattern follows
TIME_PATTERN = r"^[0-9]{4}-?[0-9W][\s\S]*$"

DURATION_HELP = "seconds, or a duration like 90s, 5m, 24h, 3d, 1w, 1h30m"
TIME_HELP = (
    "an ISO time like 2026-03-01T09:00:00+01:00 or 2026-03-01T09:00:00Z;"
    " without an offset it is in defaults.timezone"
)


def parse_duration(value: object) -> int:
    """Seconds in ``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"1w"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 90s, 5m, 24h, 3d")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str) and _DURATION.match(value):
        return sum(int(n) * _UNIT_SECONDS[u.lower()] for n, u in _DURATION_PART.findall(value))
    raise ValueError(f"{value!r} is not a duration (write e.g. 90s, 5m, 24h, 3d, 1h30m)")


def parse_percent(value: object) -> float:
    """A share of customers: ``20``, ``"20%"`` or ``12.5``, between 0 and 100."""
    number: float
    if isinstance(value, bool):
        raise ValueError("a rollout is a percentage like 20%")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _PERCENT.fullmatch(value):
        number = float(value.strip().rstrip("%"))
    else:
        raise ValueError(f"{value!r} is not a percentage (write e.g. 20%)")
    if not 0 <= number <= 100:
        raise ValueError(f"{value!r} is not between 0% and 100%")
    return number


def parse_time(value: object) -> datetime:
    """An ISO time as ``datetime.fromisoformat`` reads it (naive when without offset)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a time (write e.g. 2026-03-01T09:00:00)")


def whole_number(value: object) -> int:
    """A whole number as YAML writes it (``90``, also ``90.0``); not text, not true/false."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    shown = "true" if value is True else "false" if value is False else repr(value)
    raise ValueError(f"expected a whole number, not {shown}")


def flag(value: object) -> bool:
    """true or false, as YAML 1.2 writes them (``yes``, ``no``, ``"true"`` are text)."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, not {value!r}")


#: the JSON Schema of each kind of value, with the message editors show for a mistake
DURATION_SCHEMA: dict[str, Any] = {
    "type": ["integer", "string"],
    "minimum": 0,
    "pattern": DURATION_PATTERN,
    "description": DURATION_HELP,
    "errorMessage": f"Not a duration: write {DURATION_HELP}.",
}
PERCENT_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "minimum": 0,
    "maximum": 100,
    "pattern": PERCENT_PATTERN,
    "description": "share of customers, e.g. 20%",
    "errorMessage": "Not a share of customers: write a percentage from 0% to 100%, e.g. 20%.",
}
TIME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": TIME_PATTERN,
    "description": TIME_HELP,
    "errorMessage": f"Not a time: write {TIME_HELP}.",
}

Duration = Annotated[int, BeforeValidator(parse_duration), WithJsonSchema(DURATION_SCHEMA)]
Percent = Annotated[float, BeforeValidator(parse_percent), WithJsonSchema(PERCENT_SCHEMA)]
Moment = Annotated[datetime, BeforeValidator(parse_time), WithJsonSchema(TIME_SCHEMA)]


def _whole_schema(low: int, high: int, meaning: str) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": low,
        "maximum": high,
        "description": f"{low} to {high}; {meaning}",
        "errorMessage": f"Expected a whole number from {low} to {high} ({meaning}).",
    }


Priority = Annotated[
    int,
    BeforeValidator(whole_number),
    Field(ge=0, le=100),
    WithJsonSchema(_whole_schema(0, 100, "higher is more urgent")),
]
Boost = Annotated[
    int,
    BeforeValidator(whole_number),
    Field(ge=-100, le=100),
    WithJsonSchema(_whole_schema(-100, 100, "added to the priority")),
]
Whole = Annotated[
    int,
    BeforeValidator(whole_number),
    WithJsonSchema({"type": "integer", "errorMessage": "Expected a whole number."}),
]
Flag = Annotated[
    bool,
    BeforeValidator(flag),
    WithJsonSchema({"type": "boolean", "errorMessage": "Expected true or false."}),
]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]

#: a skill: a name, or a name and the level an agent needs (``billing:3``, 1 to 5)
SKILL_PATTERN = r"^[^\s:]([^:]*[^\s:])?(:[1-5])?$"
_SKILL = re.compile(SKILL_PATTERN)
SKILL_HELP = "a skill name, or name:level for a level 1-5 (billing, billing:3)"


def parse_skill_text(value: object) -> str:
    """A skill as written: ``billing`` (any level) or ``billing:3`` (3 or more)."""
    if isinstance(value, str) and _SKILL.match(value):
        return value
    raise ValueError(f"{value!r} is not a skill ({SKILL_HELP})")


Skill = Annotated[
    str,
    BeforeValidator(parse_skill_text),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SKILL_PATTERN,
            "description": SKILL_HELP,
            "errorMessage": f"Not a skill: write {SKILL_HELP}.",
        }
    ),
]

#: Union members are tagged with names in angle brackets; error locations drop them.
_TEXT, _MAPPING = "<text>", "<mapping>"


def _text_or_mapping(value: object) -> str:
    return _TEXT if isinstance(value, str) else _MAPPING


def _text_or(model: type[BaseModel]) -> Any:
    """``str | model``, choosing the member by the value's shape (clean error messages)."""
    return Annotated[
        Annotated[str, Tag(_TEXT)] | Annotated[model, Tag(_MAPPING)],
        Discriminator(_text_or_mapping),
    ]


Hours = Annotated[
    Annotated[str, Tag(_TEXT)] | Annotated[list[str], Tag(_MAPPING)],
    Discriminator(_text_or_mapping),
    Field(description='"09:00-17:00", "08:00-12:00, 13:00-17:00", "closed", or a list of ranges'),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AgingSpec(_Strict):
    """The priority of a waiting contact grows with its wait."""

    every: Duration = Field(description="the wait that adds ``by`` to the priority")
    by: Boost = 1
    max: Priority = 100


class AssignSpec(_Strict):
    """omniroute offers this queue's contacts to agents (docs/agents.md)."""

    mode: Literal["most_available", "longest_idle", "round_robin"] = Field(
        default="most_available",
        description="most_available: most free units; longest_idle; round_robin",
    )
    offer_timeout: Duration | None = Field(
        default=None, description="how long an offer waits for accept or reject"
    )
    preferred_wait: Duration = Field(
        default=0,
        description="how long the preferred (or last) agent is waited for before the queue",
    )
    aging: AgingSpec | None = None


class QueueSpec(_Strict):
    """A queue the platform knows; rules may only route to declared queues."""

    description: str | None = None
    skills: list[Skill] = Field(default_factory=list, description="skills every contact here needs")
    assign: AssignSpec | None = Field(
        default=None, description="omniroute assigns this queue's contacts to agents"
    )


class CalendarSpec(_Strict):
    """Opening hours in one time zone, with holidays and special days."""

    timezone: str = Field(description="IANA time zone, e.g. Europe/Berlin")
    hours: dict[str, Hours] = Field(
        default_factory=dict,
        description="per weekday (mon … sun) or range of days (mon-fri); days not named are closed",
    )
    holidays: list[str] = Field(default_factory=list, description="dates (YYYY-MM-DD), closed")
    special_days: dict[str, Hours] = Field(
        default_factory=dict, description="date (YYYY-MM-DD) -> hours that replace the weekday's"
    )


class ChannelDefaults(_Strict):
    """Defaults for one channel; unset values come from the general defaults."""

    queue: str | None = None
    priority: Priority | None = None
    sla: Duration | None = None
    skills: list[Skill] | None = None


class DefaultsSpec(_Strict):
    """What a contact gets when no rule decides (and what a rule leaves unset)."""

    timezone: str = Field(default="UTC", description="time zone of time.* fields and of tests")
    queue: str | None = None
    priority: Priority = 50
    sla: Duration | None = None
    skills: list[Skill] = Field(default_factory=list)
    chat: ChannelDefaults | None = None
    email: ChannelDefaults | None = None
    voice: ChannelDefaults | None = None
    social: ChannelDefaults | None = None


class FromField(_Strict):
    """A value taken from the routing input, with a fallback when it is missing."""

    from_: str = Field(alias="from", description="a field, e.g. customer.last.queue")
    fallback: str | None = None


class OverflowSpec(_Strict):
    """After ``after`` without an answer the platform applies this step."""

    after: Duration
    queue: str | None = None
    drop_skills: list[Skill] = Field(default_factory=list)
    priority: Priority | None = None
    priority_boost: Boost | None = None


class RouteSpec(_Strict):
    """What a matching rule decides; anything unset comes from the defaults."""

    queue: _text_or(FromField) | None = None  # type: ignore[valid-type]
    priority: Priority | None = None
    priority_boost: Boost | None = None
    skills: list[Skill] = Field(default_factory=list)
    sla: Duration | None = None
    tags: list[str] = Field(default_factory=list)
    preferred_agent: _text_or(FromField) | None = None  # type: ignore[valid-type]
    overflow: list[OverflowSpec] = Field(default_factory=list)


class RuleSpec(_Strict):
    """One routing rule. The first matching rule decides, unless it says ``continue``."""

    name: Name
    description: str | None = None
    enabled: Flag = True
    when: dict[str, Any] | None = Field(
        default=None, description="conditions; all must hold. No when: always matches"
    )
    rollout: Percent | None = None
    continue_: Flag = Field(
        default=False, alias="continue", description="only add tags, skills, priority_boost"
    )
    route: RouteSpec = Field(default_factory=RouteSpec)


class ExpectSpec(_Strict):
    """What a test expects of the decision; keys left out are not checked."""

    queue: str | None = None
    rule: str | None = Field(default=None, description="the deciding rule; null means defaults")
    priority: Whole | None = None
    skills: list[str] | None = None
    sla: Duration | None = None
    tags: list[str] | None = Field(default=None, description="exactly these tags, in any order")
    preferred_agent: str | None = None
    rollout: str | None = Field(default=None, description='e.g. "new-refund-flow:in"')


class CaseSpec(_Strict):
    """One test case: an input and the decision it must get."""

    name: Name
    contact: dict[str, Any] = Field(description="Contact fields; channel is required")
    customer: dict[str, Any] | None = Field(
        default=None, description="CustomerContext fields; times may be written as '2h ago'"
    )
    now: Moment | None = None
    expect: ExpectSpec


class RulesFile(_Strict):
    """One rules file. A ruleset is one or more files read together."""

    model_config = ConfigDict(title="omniroute rules file")

    queues: dict[str, QueueSpec | None] = Field(default_factory=dict)
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    defaults: DefaultsSpec | None = None
    rules: list[RuleSpec] = Field(default_factory=list)
    tests: list[CaseSpec] = Field(default_factory=list)

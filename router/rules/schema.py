"""The rules file format as pydantic models: what a supervisor may write.

These models check the shape of a file (keys, types, durations, percentages)
and produce the JSON Schema that ``omniroute rules schema`` prints for editors.
What they cannot see (field names in conditions, declared queues, calendars)
the compiler checks afterwards, with the same file:line:col locations.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
)

_DURATION_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(?:\d+\s*[wdhms]\s*)+$", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
DURATION_PATTERN = r"^\s*(\d+\s*[wdhmsWDHMS]\s*)+$"


def parse_duration(value: object) -> int:
    """Seconds in ``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"1w"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 90s, 5m, 24h, 3d")
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
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%?\s*", value):
        number = float(value.strip().rstrip("%"))
    else:
        raise ValueError(f"{value!r} is not a percentage (write e.g. 20%)")
    if not 0 <= number <= 100:
        raise ValueError(f"{value!r} is not between 0% and 100%")
    return number


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "seconds, or a duration like 90s, 5m, 24h, 3d, 1h30m",
        }
    ),
]
Percent = Annotated[
    float,
    BeforeValidator(parse_percent),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 100},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%?\s*$"},
            ],
            "description": "share of customers, e.g. 20%",
        }
    ),
]
Priority = Annotated[int, Field(ge=0, le=100, description="0 to 100; higher is more urgent")]
Boost = Annotated[int, Field(ge=-100, le=100, description="added to the priority")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]

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


class QueueSpec(_Strict):
    """A queue the platform knows; rules may only route to declared queues."""

    description: str | None = None
    skills: list[str] = Field(default_factory=list, description="skills every contact here needs")


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
    skills: list[str] | None = None


class DefaultsSpec(_Strict):
    """What a contact gets when no rule decides (and what a rule leaves unset)."""

    timezone: str = Field(default="UTC", description="time zone of time.* fields and of tests")
    queue: str | None = None
    priority: Priority = 50
    sla: Duration | None = None
    skills: list[str] = Field(default_factory=list)
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
    drop_skills: list[str] = Field(default_factory=list)
    priority: Priority | None = None
    priority_boost: Boost | None = None


class RouteSpec(_Strict):
    """What a matching rule decides; anything unset comes from the defaults."""

    queue: _text_or(FromField) | None = None  # type: ignore[valid-type]
    priority: Priority | None = None
    priority_boost: Boost | None = None
    skills: list[str] = Field(default_factory=list)
    sla: Duration | None = None
    tags: list[str] = Field(default_factory=list)
    preferred_agent: _text_or(FromField) | None = None  # type: ignore[valid-type]
    overflow: list[OverflowSpec] = Field(default_factory=list)


class RuleSpec(_Strict):
    """One routing rule. The first matching rule decides, unless it says ``continue``."""

    name: Name
    description: str | None = None
    enabled: bool = True
    when: dict[str, Any] | None = Field(
        default=None, description="conditions; all must hold. No when: always matches"
    )
    rollout: Percent | None = None
    continue_: bool = Field(
        default=False, alias="continue", description="only add tags, skills, priority_boost"
    )
    route: RouteSpec = Field(default_factory=RouteSpec)


class ExpectSpec(_Strict):
    """What a test expects of the decision; keys left out are not checked."""

    queue: str | None = None
    rule: str | None = Field(default=None, description="the deciding rule; null means defaults")
    priority: int | None = None
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
    now: datetime | None = Field(
        default=None, description="ISO time; without offset it is in defaults.timezone"
    )
    expect: ExpectSpec


class RulesFile(_Strict):
    """One rules file. A ruleset is one or more files read together."""

    model_config = ConfigDict(title="omniroute rules file")

    queues: dict[str, QueueSpec | None] = Field(default_factory=dict)
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    defaults: DefaultsSpec | None = None
    rules: list[RuleSpec] = Field(default_factory=list)
    tests: list[CaseSpec] = Field(default_factory=list)


def json_schema(condition: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a rules file, for editors, with ``condition`` for ``when``."""
    schema = RulesFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema.setdefault("$defs", {})["Condition"] = condition
    when = schema["$defs"]["RuleSpec"]["properties"]["when"]
    schema["$defs"]["RuleSpec"]["properties"]["when"] = {
        "anyOf": [{"$ref": "#/$defs/Condition"}, {"type": "null"}],
        "description": when.get("description", ""),
    }
    return schema

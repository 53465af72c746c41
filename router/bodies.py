"""Request bodies of the ``/v1`` API (and the lines of a customer import)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from router.models import (
    IDENTIFIER_KIND_MAX,
    IDENTIFIER_VALUE_MAX,
    TIME_RANGE,
    Identifier,
    JsonObject,
    in_time_range,
)

#: Profile fields a CRM may set.
PROFILE_FIELDS = ("name", "tier", "language", "segment", "attributes")


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=IDENTIFIER_KIND_MAX, pattern=r"^[a-z][a-z0-9_-]*$")
    value: str = Field(min_length=1, max_length=IDENTIFIER_VALUE_MAX)
    verified: bool = False


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    crm_id: str | None = Field(default=None, min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    tier: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=35)
    segment: str | None = Field(default=None, max_length=64)
    attributes: JsonObject | None = None
    identities: list[IdentityIn] = Field(default_factory=list, max_length=100)

    def given_identifiers(self) -> list[tuple[str, Identifier]]:
        """The identifiers of the body (the CRM id first), each with the field it came from."""
        given: list[tuple[str, Identifier]] = []
        if self.crm_id:
            given.append(("crm_id", Identifier(kind="crm", value=self.crm_id, verified=True)))
        given += [
            (f"identities.{n}.value", Identifier(kind=i.kind, value=i.value, verified=i.verified))
            for n, i in enumerate(self.identities)
        ]
        return given

    def profile(self) -> dict[str, Any]:
        """The profile fields given; ``"attributes": null`` clears the attributes."""
        fields = self.model_fields_set & set(PROFILE_FIELDS)
        out = {k: getattr(self, k) for k in fields}
        if "attributes" in out and out["attributes"] is None:
            out["attributes"] = {}
        return out


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_: uuid.UUID = Field(alias="from")


class JourneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64)
    step: str | None = Field(default=None, max_length=128)
    status: Literal["open", "closed"] = "open"
    data: JsonObject = Field(default_factory=dict)


def _storable_time(at: datetime) -> datetime:
    if not in_time_range(at if at.tzinfo else at.replace(tzinfo=UTC)):  # naive: UTC
        raise PydanticCustomError("time_range", TIME_RANGE)
    return at


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: the platform's id of the event; a repeat with the same id is ignored
    event_id: str | None = Field(default=None, min_length=1, max_length=256)
    type: Literal["assigned", "answered", "transferred", "abandoned", "resolved", "closed"]
    at: Annotated[datetime, AfterValidator(_storable_time)] | None = None
    agent: str | None = Field(default=None, max_length=256)
    data: JsonObject = Field(default_factory=dict)


#: A rules file's name in a publication: a plain file name (no directories,
#: nothing hidden) ending in .yaml or .yml.
RULES_FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.ya?ml$"
#: At most this many files in a publication, each at most this many characters.
RULES_FILES_MAX = 64
RULES_FILE_CHARS_MAX = 256 * 1024
#: The version of a ruleset: 12 hex digits (a content hash).
RULES_VERSION = r"^[0-9a-f]{12}$"
COMMENT_MAX = 1000


def _comment(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must say what changed and why (not blank)")
    return value


def _rules_files(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if ".." in name:
            raise PydanticCustomError("file_name", f"file name {name!r}: no '..'")
        if len(text) > RULES_FILE_CHARS_MAX:
            raise PydanticCustomError(
                "file_size",
                f"file {name!r} has {len(text)} characters; at most {RULES_FILE_CHARS_MAX}",
            )
    return value


RulesFileName = Annotated[str, Field(pattern=RULES_FILE_NAME)]
Comment = Annotated[str, Field(min_length=1, max_length=COMMENT_MAX), AfterValidator(_comment)]


class PublishIn(BaseModel):
    """``POST /v1/rules/versions``: the files of the ruleset, why, and on top of what."""

    model_config = ConfigDict(extra="forbid")
    files: Annotated[
        dict[RulesFileName, str],
        Field(min_length=1, max_length=RULES_FILES_MAX),
        AfterValidator(_rules_files),
    ]
    comment: Comment
    #: the version the change was made on; 409 unless it is still the published one
    parent: str | None = Field(default=None, pattern=RULES_VERSION)


class RepublishIn(BaseModel):
    """``POST /v1/rules/versions/{version}/publish``: why (a rollback, usually)."""

    model_config = ConfigDict(extra="forbid")
    comment: Comment
    parent: str | None = Field(default=None, pattern=RULES_VERSION)


class CandidateIn(BaseModel):
    """``POST /v1/rules/check``: the files of a candidate ruleset."""

    model_config = ConfigDict(extra="forbid")
    files: Annotated[
        dict[RulesFileName, str],
        Field(min_length=1, max_length=RULES_FILES_MAX),
        AfterValidator(_rules_files),
    ]


#: An agent's id: what platforms use (numeric ids, worker SIDs, e-mail
#: addresses), never markup, a path separator or a control character.
AGENT_ID_MAX = 128
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:+\-]*$"
AGENT_ID_RULE = (
    f"1 to {AGENT_ID_MAX} characters: letters, digits and . _ @ : + - "
    "(starting with a letter or digit)"
)
#: Text without control characters (names and skills are data, shown as text).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
SKILL_MAX = 64
SKILLS_MAX = 200
CHANNEL_MAX_LIMIT = 1000

SkillName = Annotated[str, Field(min_length=1, max_length=SKILL_MAX, pattern=_PRINTABLE)]
SkillLevel = Annotated[int, Field(strict=True, ge=1, le=5)]
ChannelMaximum = Annotated[int, Field(strict=True, ge=0, le=CHANNEL_MAX_LIMIT)]


class AgentIn(BaseModel):
    """An agent's profile (``PUT /v1/agents/{id}``): the whole of it, the
    fields left out take their defaults."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=256, pattern=_PRINTABLE)
    #: skill -> level 1 (basic) .. 5 (expert)
    skills: dict[SkillName, SkillLevel] = Field(default_factory=dict, max_length=SKILLS_MAX)
    #: capacity units (a voice call takes 100 by default, see agents.units)
    capacity: int = Field(default=100, strict=True, ge=0, le=100_000)
    #: channel -> the most contacts of it held at once (0: none of it)
    channel_max: dict[Literal["chat", "email", "voice", "social"], ChannelMaximum] = Field(
        default_factory=dict
    )


class AgentLine(AgentIn):
    """A line of ``omniroute agents import``: an agent's id and profile."""

    agent_id: str = Field(min_length=1, max_length=AGENT_ID_MAX, pattern=AGENT_ID_PATTERN)


class PresenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: available, busy, away, offline, or a platform's name in agents.presence_names
    presence: str = Field(min_length=1, max_length=64)
    #: when the change happened on the platform (no offset: UTC); a change
    #: older than the agent's current presence is stale and ignored
    at: Annotated[datetime, AfterValidator(_storable_time)] | None = None

    def when(self) -> datetime | None:
        if self.at is None or self.at.tzinfo is not None:
            return self.at
        return self.at.replace(tzinfo=UTC)

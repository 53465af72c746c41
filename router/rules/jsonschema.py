"""The JSON Schema of rules files for editors: what ``omniroute rules schema`` prints.

It is built from the file-format models (:mod:`router.rules.schema`), the
fields of the routing input (:mod:`router.rules.fields`) and the operators
(:mod:`router.rules.conditions`), so that it follows the engine:

* what ``omniroute rules check`` accepts, the schema accepts: each pattern
  sits next to the parser it stands for, and the tests hold them together;
* a mistake the schema can see is reported at the offending key or value,
  with a message that says what is expected (``errorMessage``, which the YAML
  language server of VS Code shows), and a key one typo away from a known
  one gets a "did you mean";
* completion offers every key once.

Choices made for yaml-language-server (the engine of VS Code's YAML support),
each checked by tests/rules/test_rules_editor.py:

* Where a value may take several shapes (a value, a list or operators; a
  queue name or ``{from: …}``) the shape is chosen by the value's type with
  ``if``/``then``/``else``, not ``anyOf``: with ``anyOf`` the server reports
  the failure of whichever alternative it guesses, often the wrong one.
* A ``when`` block and an operator mapping list their keys as
  ``patternProperties`` and offer them through ``propertyNames`` (an ``enum``
  inside ``anyOf`` with an empty schema: offered, checking nothing), closed by
  ``unevaluatedProperties: false``. The server completes keys inside ``{…}``
  only from ``propertyNames``, and not at all for a mapping that has
  ``properties`` or ``additionalProperties: false``; ``{gte: 2}`` is how
  operators are usually written.
* Messages come from ``errorMessage``; a key's "did you mean" is an
  ``if``/``then`` in ``propertyNames`` (the server cannot compute one), one
  pattern per known key that matches its one-typo variants.

What only the full check can see (declared queues and calendars, rule names,
regular expressions, the order of overflow steps …) is listed in docs/rules.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from router.models import CHANNELS, Contact, CustomerContext
from router.rules.calendars import DATE_PATTERN, DAYS_PATTERN, HOURS_ITEM_PATTERN, HOURS_PATTERN
from router.rules.conditions import CALENDAR_TESTS, OPERATOR_KINDS, OPERATORS
from router.rules.fields import Catalog, Field, Kind
from router.rules.schema import DURATION_SCHEMA, TIME_SCHEMA, RulesFile

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
Schema = dict[str, Any]

#: what each operator does, for completion and hover (docs/rules.md, Operators)
OPERATOR_HELP = {
    "eq": "equals",
    "ne": "does not equal (a missing value does not equal)",
    "in": "is one of",
    "not_in": "is none of (a missing value is none of them)",
    "any_of": "(a list) has one of these items; (text) has one of these words",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "between": "is within [low, high], both included",
    "contains": "(text) has this piece of text; (a list) has this item",
    "contains_any": "(text) has one of these words or phrases; (a list) has one of these items",
    "starts_with": "(text) starts with",
    "ends_with": "(text) ends with",
    "matches": "(text) matches the regular expression (Python syntax, ignoring case)",
    "exists": "is present (true) or missing (false)",
    "empty": "is missing, blank text or an empty list (true), or not (false)",
    "within": "(a time) is at most this long before now",
    "older_than": "(a time) is more than this long before now",
}
_GROUP_HELP = {
    "all": "a list of condition groups; all must hold (useful inside any)",
    "any": "a list of condition groups, or a mapping of alternatives; one must hold",
    "not": "a group of conditions; holds when the group as a whole does not hold",
    "within": "a calendar declared under calendars: holds while it is open",
    "outside": "a calendar declared under calendars: holds while it is closed",
}
_NOUN = {
    Kind.TEXT: "text",
    Kind.NUMBER: "a number",
    Kind.BOOL: "true or false",
    Kind.TIME: "a time",
    Kind.LIST: "a list",
    Kind.OBJECT: "a group of fields",
    Kind.ANY: "a free-form value",
}
#: an operator mapping that suits each kind, for messages
_EXAMPLE = {
    Kind.TEXT: "{starts_with: de}",
    Kind.NUMBER: "{gte: 2}",
    Kind.BOOL: "{exists: true}",
    Kind.TIME: "{within: 24h}",
    Kind.LIST: "{contains: email}",
    Kind.OBJECT: "{exists: true}",
    Kind.ANY: "{gte: 300}",
}
_EQUALITY = ("eq", "ne", "in", "not_in")
_A_GROUP = "a mapping of conditions, e.g. {customer.tier: vip}"


def rules_schema(catalog: Catalog) -> Schema:
    """The JSON Schema of one rules file, naming every field of ``catalog``."""
    schema: Schema = {
        "$schema": SCHEMA_DIALECT,
        **_tidy(RulesFile.model_json_schema(by_alias=True), root=True),
    }
    defs: dict[str, Schema] = schema["$defs"]
    defs.update(_condition_defs(catalog))
    _rule(defs["RuleSpec"])
    _route(defs["RouteSpec"])
    _overflow(defs["OverflowSpec"])
    _calendar(defs["CalendarSpec"])
    _case(defs["CaseSpec"])
    for part in (schema, *defs.values()):
        if part.get("additionalProperties") is False and part.get("properties"):
            names = list(part["properties"])
            part["propertyNames"] = {
                "doNotSuggest": True,
                "if": {"enum": names},
                "else": {"allOf": _did_you_mean(names)},
            }
    return schema


# -- generic pieces ----------------------------------------------------------------------


def _tidy(node: Any, *, root: bool = False) -> Any:
    """The models' schema with the titles pydantic derives from names dropped (the root's
    kept: editors show it as the source of a problem), ``X | None`` written as one type
    list and ``default: null`` left out."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if (key == "title" and not root) or (key == "default" and value is None):
            continue
        if key in ("properties", "$defs"):  # names, not keywords
            out[key] = {name: _tidy(sub) for name, sub in value.items()}
        elif key in ("enum", "const", "default", "examples"):
            out[key] = value
        else:
            out[key] = _tidy(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        kind = other.get("type")
        if kind is not None and not {"anyOf", "oneOf", "$ref"} & other.keys():
            del out["anyOf"]
            types = [kind] if isinstance(kind, str) else list(kind)
            out = {**other, **out, "type": [*types, "null"]}
    return out


def by_type(*, obj: Schema | None = None, array: Schema | None = None, other: Schema) -> Schema:
    """A value checked by the schema for its shape: a mapping, a list or anything else."""
    result = other
    if array is not None:
        result = {"if": {"type": "array"}, "then": array, "else": result}
    if obj is not None:
        result = {"if": {"type": "object"}, "then": obj, "else": result}
    return result


def _fails(message: str) -> Schema:
    """A schema nothing passes, reported with ``message``."""
    return {"enum": [], "errorMessage": message}


def js_escape(text: str) -> str:
    """``text`` as a literal in an ECMAScript pattern (also valid in Python's ``re``)."""
    return re.sub(r"[\\^$.*+?()\[\]{}|/]", r"\\\g<0>", text)


def _any_case(text: str) -> str:
    """A pattern for ``text`` in any case (editors' patterns take no flags)."""
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.lower() != c.upper() else js_escape(c) for c in text
    )


def _one_typo(text: str) -> list[str]:
    """Patterns of ``text`` with a character added, left out, changed or two swapped."""
    esc = js_escape
    variants = {esc(text[:i]) + "." + esc(text[i:]) for i in range(len(text) + 1)}
    variants |= {esc(text[:i]) + ".?" + esc(text[i + 1 :]) for i in range(len(text))}
    variants |= {
        esc(text[:i] + text[i + 1] + text[i] + text[i + 2 :]) for i in range(len(text) - 1)
    }
    return sorted(variants)


def near(name: str) -> str:
    """A pattern for the texts one typo away from ``name`` (within one of its dotted
    parts, or in place of a dot) or differing in case only; ``name`` matches as well."""
    parts = name.split(".")
    variants = [_any_case(name)]
    for n, part in enumerate(parts):
        before = js_escape(".".join(parts[:n]) + ".") if n else ""
        after = js_escape("." + ".".join(parts[n + 1 :])) if n < len(parts) - 1 else ""
        variants.append(before + "(?:" + "|".join(_one_typo(part)) + ")" + after)
    for n in range(1, len(parts)):
        variants.append(js_escape(".".join(parts[:n])) + ".?" + js_escape(".".join(parts[n:])))
    return "^(?:" + "|".join(variants) + ")$"


def _did_you_mean(names: Iterable[str], exact: dict[str, str] | None = None) -> list[Schema]:
    """For ``propertyNames``: "did you mean …?" at a key one typo away from one of
    ``names``, or equal to a key of ``exact``."""
    hints: list[Schema] = [
        {"if": {"pattern": near(name)}, "then": _fails(f"Did you mean {name}?")} for name in names
    ]
    hints += [
        {"if": {"const": key}, "then": _fails(f"Did you mean {name}?")}
        for key, name in (exact or {}).items()
    ]
    return hints


def _keyed(
    keys: dict[str, Schema],
    *,
    other_keys: dict[str, Schema],
    valid: Schema,
    checks: list[Schema],
    help_text: str,
) -> Schema:
    """A mapping with these keys (each with the schema of its value, each offered for
    completion through ``propertyNames``, see the module's docstring) and keys matching the
    patterns of ``other_keys``. Any other key is reported at the key; a key that is not
    ``valid`` is checked against ``checks`` (schemas of key names, e.g. hints)."""
    offered = list(keys)
    patterns = {f"^{js_escape(key)}$": value for key, value in keys.items()} | other_keys
    return {
        "type": "object",
        "patternProperties": patterns,
        "unevaluatedProperties": False,
        "propertyNames": {
            "markdownDescription": help_text,
            "allOf": [
                {"anyOf": [{"enum": offered}, {}]},  # offered for completion; checks nothing
                {"if": valid, "else": {"allOf": checks}},
            ],
        },
    }


# -- conditions ---------------------------------------------------------------------------


def _records(field: Field) -> bool:
    return field.kind is Kind.LIST and field.item_kind is Kind.OBJECT


def _applies(op: str, field: Field) -> bool:
    """Whether ``op`` compiles on ``field`` (conditions._OPERATORS, _plain_items)."""
    if _records(field) and op in ("any_of", "contains", "contains_any"):
        return False
    return field.kind in OPERATOR_KINDS[op]


def _scalar(field: Field) -> Schema:
    """An operand ``eq`` takes for ``field`` (conditions.ConditionCompiler.scalar)."""
    if field.choices:
        alternatives = "|".join(_any_case(choice) for choice in field.choices)
        return {"type": ["string", "null"], "pattern": f"^(?:{alternatives})$"}
    types = {
        Kind.TEXT: ["string", "number", "null"],
        Kind.NUMBER: ["number", "null"],
        Kind.BOOL: ["boolean", "null"],
    }.get(field.kind, ["string", "number", "boolean", "null"])
    return {"type": types}


def _operand(op: str, field: Field) -> Schema:
    """The operand of ``op`` on ``field``, as the operator's builder checks it."""
    scalar = _scalar(field)
    time = field.kind is Kind.TIME
    bound = {"$ref": "#/$defs/Time"} if time else {"type": "number"}
    word = {"type": ["string", "integer"], "minLength": 1}
    words = by_type(array={"type": "array", "minItems": 1, "items": word}, other=word)
    values = f"one of {', '.join(field.choices)}" if field.choices else _NOUN[field.kind]
    schemas: dict[str, tuple[Schema, str]] = {
        "eq": (scalar, values),
        "ne": (scalar, values),
        "in": ({"type": "array", "minItems": 1, "items": scalar}, f"a list of values ({values})"),
        "not_in": (
            {"type": "array", "minItems": 1, "items": scalar},
            f"a list of values ({values})",
        ),
        "any_of": (words, "a word or phrase, or a list of them"),
        "contains_any": (words, "a word or phrase, or a list of them"),
        "gt": (bound, "a number"),
        "gte": (bound, "a number"),
        "lt": (bound, "a number"),
        "lte": (bound, "a number"),
        "between": (
            {"type": "array", "minItems": 2, "maxItems": 2, "items": bound},
            "[low, high], e.g. [2, 5]",
        ),
        "contains": (
            {"type": ["string", "number"], "minLength": 1},
            "a piece of text (or, for a list, one value)",
        ),
        "starts_with": ({"type": "string", "minLength": 1}, "a piece of text"),
        "ends_with": ({"type": "string", "minLength": 1}, "a piece of text"),
        "matches": ({"type": "string"}, "a regular expression (text)"),
        "exists": ({"type": "boolean"}, "true or false"),
        "empty": ({"type": "boolean"}, "true or false"),
        "within": ({"$ref": "#/$defs/Duration"}, ""),
        "older_than": ({"$ref": "#/$defs/Duration"}, ""),
    }
    schema, takes = schemas[op]
    if "$ref" not in schema and not (time and op in ("gt", "gte", "lt", "lte")):
        schema = {**schema, "errorMessage": f"{op} takes {takes}."}
    return {**schema, "description": OPERATOR_HELP[op]}


def _operators(field: Field) -> Schema:
    """The operator mapping of a field of this kind: unknown keys are reported, and so are
    operators that do not apply to the kind, by name."""
    applicable = [op for op in OPERATORS if _applies(op, field)]
    others = [op for op in OPERATORS if op not in applicable]
    noun = _NOUN[field.kind]
    takes = f"this field takes: {', '.join(applicable)}"
    checks = [
        {"if": {"const": op}, "then": _fails(f"{op} does not apply to {noun} ({takes})")}
        for op in others
    ]
    lines = "\n".join(f"- `{op}`: {OPERATOR_HELP[op]}" for op in applicable)
    schema = _keyed(
        {op: _operand(op, field) for op in applicable},
        other_keys={f"^(?:{'|'.join(others)})$": {}} if others else {},
        valid={"enum": applicable},
        checks=checks + _did_you_mean(applicable),
        help_text=f"Operators on {noun}; all must hold:\n\n{lines}",
    )
    return schema  # no description: hovering shows the field's


def _operators_name(field: Field) -> str:
    if field.choices:
        return "".join(part.title() for part in field.path.split(".")) + "Operators"
    if _records(field):
        return "RecordsOperators"
    return {
        Kind.TEXT: "TextOperators",
        Kind.NUMBER: "NumberOperators",
        Kind.BOOL: "BooleanOperators",
        Kind.TIME: "TimeOperators",
        Kind.LIST: "ListOperators",
        Kind.OBJECT: "GroupOperators",
        Kind.ANY: "ValueOperators",
    }[field.kind]


def _describe(field: Field) -> str:
    if field.choices:
        return f"text: {', '.join(field.choices)}"
    if field.kind is Kind.LIST and field.item_kind is not None:
        return "a list of records" if _records(field) else f"a list ({_NOUN[field.item_kind]})"
    return _NOUN[field.kind]


def _test(field: Field, path: str) -> Schema:
    """What may follow ``path:`` in a condition: a value, a list of values or operators."""
    ref = _not_empty(
        _operators_name(field), "Give at least one operator, e.g. {gte: 2}, or a value."
    )
    head: Schema = {"description": f"{path}: {_describe(field)}"}
    if field.choices:
        example = f"{{ne: {field.choices[0]}}}"
    else:
        example = _EXAMPLE[field.kind]
    if not any(_applies(op, field) for op in _EQUALITY):
        message = f"{path} is {_NOUN[field.kind]}: test it with operators, e.g. {example}"
        return {**head, **by_type(obj=ref, other={"type": "object", "errorMessage": message})}
    if field.choices:
        what = f"one of {', '.join(field.choices)}"
    else:
        what = {Kind.TEXT: "text", Kind.NUMBER: "a number", Kind.BOOL: "true or false"}.get(
            field.kind, "a value"
        )
    message = f"{path}: expected {what}, a list of them, or operators like {example}"
    scalar = {**_scalar(field), "errorMessage": message}
    values = {"type": "array", "minItems": 1, "items": scalar}
    return {**head, **by_type(obj=ref, array=values, other=scalar)}


def _group(empty: str, wrong: str) -> Schema:
    """A non-empty mapping of conditions; an empty one is reported with ``empty``,
    anything else with ``wrong``."""
    return by_type(obj=_not_empty("Condition", empty), other=_fails(wrong))


def _not_empty(definition: str, message: str) -> Schema:
    """A mapping checked by ``definition``, and reported with ``message`` when empty (the
    definition still applies to the empty mapping: it offers the keys to complete)."""
    return {
        "$ref": f"#/$defs/{definition}",
        "if": {"maxProperties": 0},
        "then": _fails(message),
    }


def _groups() -> dict[str, Schema]:
    entries = {
        "type": "array",
        "minItems": 1,
        "items": _group("Give this entry a condition.", f"Each entry is {_A_GROUP}."),
    }
    groups: dict[str, Schema] = {
        "all": {
            "description": _GROUP_HELP["all"],
            **by_type(array=entries, other=_fails("'all' takes a list of condition groups.")),
        },
        "any": {
            "description": _GROUP_HELP["any"],
            **by_type(
                obj=_group("Give 'any' at least one condition.", ""),
                array=entries,
                other=_fails("'any' takes a list of condition groups or a mapping."),
            ),
        },
        "not": {
            "description": _GROUP_HELP["not"],
            **_group("Give 'not' at least one condition.", f"'not' takes {_A_GROUP}."),
        },
    }
    for test in CALENDAR_TESTS:
        groups[test] = {
            "type": "string",
            "description": _GROUP_HELP[test],
            "errorMessage": "Expected the name of a calendar declared under calendars:.",
        }
    return groups


def _condition_defs(catalog: Catalog) -> dict[str, Schema]:
    """``Condition`` (a ``when`` block), the operator mappings of each kind of field, and
    the ``Time`` and ``Duration`` they use."""
    defs: dict[str, Schema] = {"Time": dict(TIME_SCHEMA), "Duration": dict(DURATION_SCHEMA)}
    keys = _groups()
    for path, field in sorted(catalog.fields.items()):
        keys[path] = _test(field, path)
        defs.setdefault(_operators_name(field), _operators(field))
    anything = Field("attribute", Kind.ANY, lambda i: None)
    defs.setdefault(_operators_name(anything), _operators(anything))
    free = "|".join(js_escape(prefix) for prefix in sorted(catalog.free_form))
    free_keys = {rf"^(?:{free})(?:\.[^.]+)+$": _test(anything, "this attribute")}
    names = list(keys)
    # a field written without its prefix: tier -> customer.tier (as the compiler says)
    bare: dict[str, str] = {}
    for name in sorted(catalog.names()):
        bare.setdefault(name.rsplit(".", 1)[-1], name)
    bare = {key: name for key, name in bare.items() if key not in keys and key != "*"}
    condition = _keyed(
        keys,
        other_keys=free_keys,
        valid={"anyOf": [{"enum": names}, *({"pattern": p} for p in free_keys)]},
        checks=_did_you_mean(names, bare),
        help_text=(
            "A field of the routing input (docs/rules.md, Fields) followed by a value,"
            " a list of values (one of them) or operators like `{gte: 2}`; or `all`,"
            " `any`, `not`; or `within` / `outside` a calendar."
        ),
    )
    defs["Condition"] = {
        "description": "conditions; all must hold",
        **condition,
        "defaultSnippets": [
            {
                "label": f"{prefix}.…",
                "description": "free-form data below this field: any path works",
                "body": {f"{prefix}.${{1:name}}": "${2:value}"},
            }
            for prefix in sorted(catalog.free_form)
        ],
    }
    return defs


# -- the parts of a rules file the models cannot express ---------------------------------


def _rule(rule: Schema) -> None:
    description = rule["properties"]["when"].get("description", "")
    rule["properties"]["when"] = {
        "description": description,
        **by_type(
            obj={"$ref": "#/$defs/Condition"},
            other={"type": "null", "errorMessage": f"Expected {_A_GROUP}."},
        ),
    }
    only = ["tags", "skills", "priority_boost"]
    rule["allOf"] = [
        {
            "if": {"required": ["continue"], "properties": {"continue": {"const": True}}},
            "then": {
                "properties": {
                    "route": {
                        "propertyNames": {
                            "enum": only,
                            "errorMessage": "A rule with continue: true only adds tags, skills"
                            " and priority_boost; this belongs in a rule that decides.",
                        }
                    }
                }
            },
        }
    ]


def _route(route: Schema) -> None:
    for key, what in (("queue", "a declared queue"), ("preferred_agent", "an agent")):
        route["properties"][key] = {
            "description": f"{what}, or {{from: field, fallback: …}} to take it from the input",
            **by_type(
                obj={"$ref": "#/$defs/FromField"},
                other={
                    "type": ["string", "null"],
                    "errorMessage": f"Expected {what}, or {{from: field, fallback: …}}.",
                },
            ),
        }


def _overflow(step: Schema) -> None:
    given = {"type": "integer"}
    step["allOf"] = [
        {
            "if": {
                "required": ["priority", "priority_boost"],
                "properties": {"priority": given, "priority_boost": given},
            },
            "then": {
                "properties": {
                    "priority_boost": {
                        "type": "null",
                        "errorMessage": "Give priority or priority_boost, not both.",
                    }
                }
            },
        }
    ]


def _calendar(calendar: Schema) -> None:
    hours = {
        "description": '"09:00-17:00", "08:00-12:00, 13:00-17:00", "closed", or a list of ranges',
        **by_type(
            array={
                "type": "array",
                "items": {
                    "type": "string",
                    "pattern": HOURS_ITEM_PATTERN,
                    "errorMessage": 'Expected hours like "09:00-17:00" or "closed".',
                },
            },
            other={
                "type": "string",
                "pattern": HOURS_PATTERN,
                "errorMessage": 'Expected hours like "09:00-17:00", "08:00-12:00, 13:00-17:00"'
                ' or "closed".',
            },
        ),
    }
    date = {"pattern": DATE_PATTERN, "errorMessage": "Expected a date like 2026-12-24."}
    properties = calendar["properties"]
    properties["hours"]["additionalProperties"] = hours
    properties["hours"]["propertyNames"] = {
        "pattern": DAYS_PATTERN,
        "errorMessage": "Expected a day (mon … sun), a range (mon-fri) or a list (sat, sun).",
    }
    properties["special_days"]["additionalProperties"] = hours
    properties["special_days"]["propertyNames"] = date
    properties["holidays"]["items"] = {"type": "string", **date}


def _case(case: Schema) -> None:
    """A test's contact and customer name the models' fields, for completion. Their values
    are checked by the models at load, and keys the models do not know are ignored there,
    so they are not reported here either."""
    contact: dict[str, Schema] = {name: {} for name in Contact.model_fields}
    contact["channel"] = {"enum": list(CHANNELS), "description": "required"}
    customer: dict[str, Schema] = {"id": {"description": "the customer id (a UUID)"}}
    customer.update({name: {} for name in CustomerContext.model_fields})
    properties = case["properties"]
    properties["contact"] = {**properties["contact"], "properties": contact}
    properties["contact"]["required"] = ["channel"]
    properties["customer"] = {**properties["customer"], "properties": customer}

"""JSON in and out of the ``/v1`` API: request bodies validated into pydantic
models, answers serialized with orjson."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from router.errors import FieldError, InvalidBody, field_errors

M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(
            "body is not valid JSON", fields=[FieldError("body", f"invalid JSON: {exc}")]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(
            f"body does not match the {model.__name__} schema", fields=field_errors(exc)
        ) from None


def json_response(body: Any, status: int = 200) -> web.Response:
    # default=str covers the database driver's own UUID type
    return web.Response(
        body=orjson.dumps(body, default=str), status=status, content_type="application/json"
    )

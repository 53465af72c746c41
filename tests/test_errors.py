"""The one error -> HTTP status table of the web layer: domain errors carry no
status; the most specific class listed decides."""

from __future__ import annotations

import inspect
import uuid

from router import errors
from router.errors import (
    ConfigError,
    CustomerGone,
    RouterError,
    StoreUnavailable,
    UnknownCustomer,
)
from router.web.errors import STATUS, error_response, status_of


def test_domain_errors_carry_no_status() -> None:
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, RouterError):
            assert "status" not in vars(cls), cls


def test_the_most_specific_class_decides() -> None:
    customer = uuid.uuid4()
    assert status_of(UnknownCustomer(customer)) == 404  # via NotFound
    assert status_of(CustomerGone(customer, merged_into=None)) == 410  # via Gone
    assert status_of(errors.SignatureError("bad")) == 401  # not AdapterError's 400
    assert status_of(ConfigError("bad config")) == 500  # not meant for a caller
    assert STATUS[StoreUnavailable] == 503


def test_retry_after_goes_with_the_answer() -> None:
    response = error_response(StoreUnavailable("database unavailable; retry later"))
    assert (response.status, response.headers["Retry-After"]) == (503, "5")

"""PostgreSQL, the one store: ``open_store`` opens it, a ``Store`` is what the
rest of omniroute calls (see ``router/store/store.py``). Only this package
imports the database driver."""

from router.store.config import DatabaseSettings
from router.store.customers import Resolution, ResolveKey
from router.store.records import (
    ContactSummary,
    EarlierDelivery,
    NewRecord,
    Selection,
    Snapshot,
    StoredContact,
)
from router.store.store import Store, open_store

__all__ = [
    "ContactSummary",
    "DatabaseSettings",
    "EarlierDelivery",
    "NewRecord",
    "Resolution",
    "ResolveKey",
    "Selection",
    "Snapshot",
    "Store",
    "StoredContact",
    "open_store",
]

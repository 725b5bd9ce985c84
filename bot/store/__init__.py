"""The bot's persistent store: tables, transactions and leases."""

from bot.store.db import AlertStateRecord, AuditRecord, Store, make_engine

__all__ = ["AlertStateRecord", "AuditRecord", "Store", "make_engine"]

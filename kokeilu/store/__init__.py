"""Store infrastructure shared by the services: database, unit of work with outbox and inbox."""

from .database import Database, make_engine
from .tables import UtcDateTime, add_flows_table, add_messaging_tables, create_flows_table, create_messaging_tables
from .unit_of_work import INBOX, OUTBOX, OutboxReader, Relayed, UnitOfWork

__all__ = [
    "Database",
    "make_engine",
    "add_messaging_tables",
    "create_messaging_tables",
    "add_flows_table",
    "create_flows_table",
    "UtcDateTime",
    "INBOX",
    "OUTBOX",
    "OutboxReader",
    "Relayed",
    "UnitOfWork",
]

"""Databases: engines and transactions, migrations, column types, pagination."""

"""Persistence: models, migrations, DatabaseSession over session_items, and the queries
every process shares.
"""

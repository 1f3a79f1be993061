"""Counting rows of big tables without COUNT(*), which reads the whole table in PostgreSQL."""

# Below this many rows (by PostgreSQL's estimate) a table is counted exactly.
EXACT_COUNT_BELOW = 100_000


def table_estimate(connection, table):
    """PostgreSQL's estimate of the rows in TABLE (-1: never analysed, or not PostgreSQL).
    CONNECTION is a Django database connection (anything with .vendor and .cursor())."""
    if connection.vendor != "postgresql":
        return -1
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return row[0] if row else -1

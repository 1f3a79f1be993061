"""Hand-written SQL for the two hottest statements (a claim, a failed build's report):
PostgreSQL prepared statements and turning their rows back into model instances.
The ORM cannot say UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING."""
import re

from django.conf import settings
from django.db import connection

from builds.models import Build
from packages.models import Project, Version


def columns(model, alias):
    """MODEL's concrete columns, in field order, qualified by ALIAS."""
    return [f"{alias}.{f.column}" for f in model._meta.concrete_fields]


def build_from_row(row):
    """A Build with its version and project from ROW: the columns of the three models'
    concrete fields in order (columns())."""
    models = (Build, Version, Project)
    objs, at = [], 0
    for model in models:
        names = [f.attname for f in model._meta.concrete_fields]
        objs.append(model.from_db(connection.alias, names, row[at:at + len(names)]))
        at += len(names)
    build, version, project = objs
    version.project = project
    build.version = version
    return build


_prepared = {}  # statement name -> (SQL with $n placeholders, parameter names)


def forget_prepared():
    """Forget the statements' texts (tests that change the models' tables between runs)."""
    _prepared.clear()


def execute_prepared(name, make_sql, params):
    """Run the statement MAKE_SQL() (named %(placeholders)s) as PostgreSQL prepared
    statement NAME and return its first row. A claim's planning costs more than its
    execution (1.6 ms against ~0.5 ms on 1,000,000 jobs), so each database connection
    plans it once. Prepared statements outlive a rolled back transaction; a new
    connection prepares again.

    Behind a pooler that hands each transaction a server connection of its own
    (PgBouncer in transaction mode: DATABASE_TRANSACTION_POOLING) a statement prepared on
    one is unknown on the next, so there the statement is sent whole each time."""
    if settings.DATABASE_TRANSACTION_POOLING:
        with connection.cursor() as cursor:
            cursor.execute(make_sql(), params)
            return cursor.fetchone()
    if name not in _prepared:
        sql, order = make_sql(), []

        def number(match):
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        _prepared[name] = (re.sub(r"%\((\w+)\)s", number, sql), order)
    sql, order = _prepared[name]
    done = getattr(connection, "prepared_statements", None)  # this thread's connection
    if done is None:
        done = connection.prepared_statements = {}
    with connection.cursor() as cursor:
        # Only now: cursor() may have replaced a connection that failed its health
        # check (a PostgreSQL restart), and the new one has no prepared statements.
        raw = connection.connection
        if done.get(name) is not raw:
            cursor.execute(f"PREPARE {name} AS {sql}")
            done[name] = raw
        cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(order))})",
                       [params[key] for key in order])
        return cursor.fetchone()

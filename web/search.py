"""Search and the unknown project's suggestions: names by similarity, ranked for people.

A project matches a query (normalised as PyPI normalises names) when its name is the
query, starts with it, contains it, or is close to it (a typo: trigram similarity), or
when its summary names it ("yaml" finds PyYAML, whose summary says "YAML parser").
Results come in tiers, then within a tier projects with wheels here first, the most
downloaded first (Project.downloads: the downloads of all its files, folded in by
index.downloads; only a project with files has any), then by name:

    0  the name is the query
    1  the name starts with or contains the query
    2  the summary names the query, or the name is a close spelling of it

On PostgreSQL with pg_trgm (web migration 0001) each tier is one index scan, bounded
(CANDIDATES rows, most downloaded first); without it (SQLite, `make run`'s default)
the same tiers come from plain LIKE matches, and typos from difflib over names that
share the first letters.
"""
import difflib

from django.db import connection
from django.db.models import Exists, OuterRef
from django.db.models.functions import Length
from django.urls import reverse
from packaging.utils import canonicalize_name

from builds.models import Build, File
from packages.models import Project, Version

PER_PAGE = 50
# The rows each tier contributes at most: deeper pages of a one-letter query end there.
CANDIDATES = 1000
# Suggestions of the unknown-project page.
SUGGESTIONS = 5
# Names compared with difflib where there is no pg_trgm.
SUGGESTION_CANDIDATES = 2000
# pg_trgm's similarity above which a name is a close spelling of the query.
SIMILARITY = 0.4
MAX_QUERY = 100

_trigram = {}


def has_trigram():
    """Whether this database has pg_trgm (asked once per process and database)."""
    key = connection.settings_dict["NAME"]
    if key not in _trigram:
        if connection.vendor != "postgresql":
            _trigram[key] = False
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
                _trigram[key] = cursor.fetchone() is not None
    return _trigram[key]


def _like(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def normalise_query(query):
    """The query as a project name is normalised: "PyYAML " -> "pyyaml"; "" for none."""
    return canonicalize_name(query.strip()[:MAX_QUERY]).strip("-")


def _ranked_ids_postgresql(normalized, words, offset, limit):
    table = Project._meta.db_table
    # The names starting with the query, most downloaded first: a range of the
    # covering index web_project_name_downloads, read from the index alone (a LIKE
    # would let the planner take the trigram index and read 27,000 rows for "p").
    tiers = [
        f"(SELECT id, 0 AS tier FROM {table} WHERE normalized_name = %(n)s)",
        f"(SELECT id, 1 FROM {table} WHERE normalized_name ~>=~ %(n)s"
        " AND normalized_name ~<~ %(after)s ORDER BY downloads DESC LIMIT %(cap)s)",
    ]
    if len(normalized) >= 3:  # a trigram needs three letters
        # The first CANDIDATES matches, in no order (ranked below): a common word stops
        # a sequential scan early, a rare one is a trigram index scan.
        tiers += [
            f"(SELECT id, 1 FROM {table} WHERE normalized_name LIKE %(contains)s"
            " LIMIT %(cap)s)",
            f"(SELECT id, 2 FROM {table} WHERE summary ILIKE %(word)s LIMIT %(cap)s)",
        ]
    if len(normalized) >= 4:  # a typo of a longer name (three letters are close to all)
        tiers.append(
            f"(SELECT id, 2 FROM {table} WHERE normalized_name %% %(n)s"
            " AND similarity(normalized_name, %(n)s) >= %(similarity)s LIMIT %(cap)s)")
    # Whether files are served, asked of the page's rows only (after the LIMIT).
    sql = (
        "SELECT r.id, r.name, r.normalized_name, r.summary, r.downloads, EXISTS ("
        f" SELECT 1 FROM {File._meta.db_table} f"
        f" JOIN {Build._meta.db_table} b ON b.id = f.build_id"
        f" JOIN {Version._meta.db_table} v ON v.id = b.version_id"
        "  WHERE v.project_id = r.id AND NOT v.removed) FROM ("
        " SELECT p.id, p.name, p.normalized_name, p.summary, p.downloads, m.tier FROM"
        f" (SELECT id, min(tier) AS tier FROM ({' UNION ALL '.join(tiers)}) c"
        f" GROUP BY id) m JOIN {table} p ON p.id = m.id"
        " ORDER BY m.tier, p.downloads DESC, p.normalized_name USING ~<~"
        " OFFSET %(offset)s LIMIT %(limit)s) r"
        " ORDER BY r.tier, r.downloads DESC, r.normalized_name USING ~<~"
    )
    params = {
        "n": normalized, "after": _after(normalized),
        "contains": "%" + _like(normalized) + "%",
        "word": "%" + _like(" ".join(words)) + "%",
        "cap": CANDIDATES, "similarity": SIMILARITY, "offset": offset, "limit": limit,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _ranked_ids_plain(normalized, words, offset, limit):
    """The same tiers from LIKE alone (SQLite, or PostgreSQL without pg_trgm)."""
    from django.db.models import Case, IntegerField, Q, Value, When

    phrase = " ".join(words)
    match = Q(normalized_name__startswith=normalized)
    if len(normalized) >= 3:
        match |= Q(normalized_name__contains=normalized) | Q(summary__icontains=phrase)
    rows = (
        Project.objects.filter(match)
        .annotate(has_wheels=_has_wheels(), tier=Case(
            When(normalized_name=normalized, then=Value(0)),
            When(Q(normalized_name__contains=normalized), then=Value(1)),
            default=Value(2), output_field=IntegerField(),
        ))
        .order_by("tier", "-downloads", "normalized_name")
        .values_list("id", "name", "normalized_name", "summary", "downloads", "has_wheels")
        [offset:offset + limit]
    )
    return list(rows)


def _has_wheels():
    return Exists(File.objects.filter(build__version__project=OuterRef("pk"),
                                      build__version__removed=False))


def search(query, page=1, per_page=PER_PAGE):
    """One page of projects matching QUERY, best first: {"results", "page", "has_next"}.

    Each result: name, normalized_name, summary, url, downloads, has_wheels, exact.
    One query.
    """
    normalized = normalise_query(query)
    page = max(1, min(page, CANDIDATES // per_page + 1))
    if not normalized:
        return {"query": query, "results": [], "page": page, "has_next": False}
    words = query.lower().split()[:8]
    ranked = _ranked_ids_postgresql if has_trigram() else _ranked_ids_plain
    rows = ranked(normalized, words, (page - 1) * per_page, per_page + 1)
    has_next = len(rows) > per_page
    results = [
        {
            "name": name, "normalized_name": norm, "summary": summary,
            "url": reverse("web-project", args=[norm]), "downloads": downloads,
            "has_wheels": bool(has_wheels), "exact": norm == normalized,
        }
        for _id, name, norm, summary, downloads, has_wheels in rows[:per_page]
    ]
    return {"query": query, "results": results, "page": page, "has_next": has_next}


def suggestions(name, limit=SUGGESTIONS):
    """Names of projects close to NAME, for the page of an unknown project.

    Candidates: the most similar names by trigrams (pg_trgm: letters left out or added),
    and the names sharing the first two letters, or the first and last letters (a
    transposition: "nmupy" for "numpy", which trigrams miss), each bounded and found by
    an index; ranked by difflib, closest first, trigram neighbours after."""
    normalized = normalise_query(name)
    if not normalized:
        return []
    similar = []
    if has_trigram():
        with connection.cursor() as cursor:
            # % is the indexed test (pg_trgm.similarity_threshold, 0.3); <-> orders by it.
            cursor.execute(
                f"SELECT normalized_name FROM {Project._meta.db_table}"
                " WHERE normalized_name %% %s AND normalized_name <> %s"
                " ORDER BY normalized_name <-> %s, downloads DESC LIMIT %s",
                [normalized, normalized, normalized, 4 * limit],
            )
            similar = [row[0] for row in cursor.fetchall()]
    candidates = similar + _neighbours(normalized)
    close = difflib.get_close_matches(normalized, candidates, n=limit + 1, cutoff=0.6)
    ranked = [c for c in dict.fromkeys(close + similar) if c != normalized]
    return ranked[:limit]


def _after(prefix):
    """The first string after every string starting with PREFIX (byte-wise order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _neighbours(normalized):
    """Names sharing the first two letters, and names of about the same length sharing
    the first and last letters: SUGGESTION_CANDIDATES of each at most."""
    if connection.vendor != "postgresql":
        return list(
            Project.objects.filter(normalized_name__startswith=normalized[:2])
            .values_list("normalized_name", flat=True)[:SUGGESTION_CANDIDATES]
        ) + list(
            Project.objects.filter(normalized_name__startswith=normalized[:1],
                                   normalized_name__endswith=normalized[-1])
            .annotate(length=Length("normalized_name"))
            .filter(length__range=(len(normalized) - 1, len(normalized) + 1))
            .values_list("normalized_name", flat=True)[:SUGGESTION_CANDIDATES]
        )
    # Ranges of the btree (varchar_pattern_ops), read from the index alone; a LIKE 'n%'
    # would let the planner take the trigram index and read every name starting with n.
    table = Project._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"(SELECT normalized_name FROM {table} WHERE normalized_name ~>=~ %s"
            " AND normalized_name ~<~ %s LIMIT %s) UNION ALL"
            f" (SELECT normalized_name FROM {table} WHERE normalized_name ~>=~ %s"
            " AND normalized_name ~<~ %s AND right(normalized_name, 1) = %s"
            " AND length(normalized_name) BETWEEN %s AND %s LIMIT %s)",
            [normalized[:2], _after(normalized[:2]), SUGGESTION_CANDIDATES,
             normalized[:1], _after(normalized[:1]), normalized[-1],
             len(normalized) - 1, len(normalized) + 1, SUGGESTION_CANDIDATES],
        )
        return [row[0] for row in cursor.fetchall()]


def popular(limit=20):
    """The most downloaded projects (what a blank search shows)."""
    return [
        {"name": name, "normalized_name": norm, "summary": summary, "downloads": n,
         "url": reverse("web-project", args=[norm]), "has_wheels": True}
        for name, norm, summary, n in Project.objects.filter(downloads__gt=0)
        .order_by("-downloads").values_list("name", "normalized_name", "summary",
                                            "downloads")[:limit]
    ]

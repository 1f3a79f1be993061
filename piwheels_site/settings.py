"""Settings for the wheel farm, read once from the environment.

Every variable has a default that works on a developer's machine (`make run`); a bad
value fails at start-up rather than at the first request that needs it.
"""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from lib.clientip import client_ip

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name, default):
    value = os.environ.get(name, default)
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name, default):
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envfloat(name, default):
    value = os.environ.get(name, str(default))
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envsecret(name, default):
    """The value of NAME, or the contents of the file NAME_FILE names."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


DEBUG = envbool("DEBUG", "true")
DEV_SECRET_KEY = "dev-only-secret-key-change-me-in-production"
SECRET_KEY = envsecret("SECRET_KEY", DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    # Sessions and the admin would be forgeable by anyone who has read this file.
    raise ImproperlyConfigured("set SECRET_KEY (or SECRET_KEY_FILE) when DEBUG is false")
# Behind TLS (the default when DEBUG is off): cookies only over HTTPS, and the proxy's
# X-Forwarded-Proto says whether the request came in over HTTPS.
SECURE_COOKIES = envbool("SECURE_COOKIES", "false" if DEBUG else "true")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_COOKIES
# "Header: value" the TLS-terminating proxy sets on HTTPS requests (and strips from
# clients'); empty when nothing in front can be trusted to say so.
_proxy_ssl = os.environ.get("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https")
if _proxy_ssl:
    _header, _, _value = _proxy_ssl.partition(":")
    if not _header.strip() or not _value.strip():
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER must be 'Header: value' or empty, not {_proxy_ssl!r}"
        )
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _header.strip().upper().replace("-", "_"), _value.strip()
    )
# HSTS on answers to HTTPS requests (SecurityMiddleware, and the index's fast path).
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "false")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "false")
# Content-Security-Policy of every answer (django-csp): the pages load their stylesheet
# from this site and nothing else, have no scripts of their own and no inline styles;
# the favicon is an empty data: URL; the admin's scripts and styles are its own files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# The names the farm answers to: this machine's own by default (`make run`); an operator
# lists the public name(s). A request naming another Host is a 400 (DisallowedHost),
# never an answer carrying that name in its URLs. "*" allows any: not a default.
ALLOWED_HOSTS = [h.strip() for h in
                 os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
                 if h.strip()]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

PIWHEELS_DATA_DIR = Path(os.environ.get("PIWHEELS_DATA_DIR", BASE_DIR / "var"))
PIWHEELS_PYPI_URL = os.environ.get("PIWHEELS_PYPI_URL", "https://pypi.org").rstrip("/")
# Seconds between catalogue sync passes run by the task worker's schedule (whole
# minutes, read at run time); 0 pauses the scheduled sync.
PIWHEELS_SYNC_INTERVAL = envint("PIWHEELS_SYNC_INTERVAL", 60)
# How the sync learns what changed upstream: "auto" (the simple root's per-project
# _last-serial, XML-RPC changelog_since_serial as a fast path where it answers),
# "simple" (the root only) or "xmlrpc" (the changelog only, after the first pass).
PIWHEELS_SYNC_METHOD = os.environ.get("PIWHEELS_SYNC_METHOD", "auto")
# Upstream requests per second of the sync (project details fetched in the background,
# far below PyPI's limits; 0: unpaced), and how long one pass may keep fetching (s): the
# rest waits for the next pass.
PIWHEELS_SYNC_RATE = envfloat("PIWHEELS_SYNC_RATE", 10)
PIWHEELS_SYNC_PASS_SECONDS = envfloat("PIWHEELS_SYNC_PASS_SECONDS", 45)
# A project upstream seems to have dropped is deleted only when it answers 404 twice at
# least this many seconds apart.
PIWHEELS_SYNC_GONE_AFTER = envfloat("PIWHEELS_SYNC_GONE_AFTER", 300)
# Upstream requests of the sync: timeout (s), retries, first backoff (s, doubled each
# retry), longest wait honoured for Retry-After (s), fetch threads, projects per
# transaction of a first pass, changelog events per transaction of a later pass.
PIWHEELS_SYNC_TIMEOUT = envfloat("PIWHEELS_SYNC_TIMEOUT", 30)
PIWHEELS_SYNC_RETRIES = envint("PIWHEELS_SYNC_RETRIES", 4)
PIWHEELS_SYNC_BACKOFF = envfloat("PIWHEELS_SYNC_BACKOFF", 1.0)
PIWHEELS_SYNC_MAX_WAIT = envfloat("PIWHEELS_SYNC_MAX_WAIT", 120)
PIWHEELS_SYNC_WORKERS = envint("PIWHEELS_SYNC_WORKERS", 8)
PIWHEELS_SYNC_BATCH = envint("PIWHEELS_SYNC_BATCH", 500)
PIWHEELS_SYNC_EVENTS_BATCH = envint("PIWHEELS_SYNC_EVENTS_BATCH", 2000)
# Largest wheel a builder may upload, in bytes.
PIWHEELS_MAX_UPLOAD = envint("PIWHEELS_MAX_UPLOAD", 1024**3)
# What a wheel may unpack to (builds/wheels.py checks every upload and import): bytes
# per member and in all, members, and the compression ratio of any member or of the
# whole once it unpacks to more than PIWHEELS_WHEEL_RATIO_MIN_SIZE (PyPI's 50 over
# 64 MiB): a 1 GB run of zeros deflates into 1 MB, and pip would unpack it.
PIWHEELS_WHEEL_MAX_MEMBER_SIZE = envint("PIWHEELS_WHEEL_MAX_MEMBER_SIZE", 2 * 1024**3)
PIWHEELS_WHEEL_MAX_UNPACKED = envint("PIWHEELS_WHEEL_MAX_UNPACKED", 4 * 1024**3)
PIWHEELS_WHEEL_MAX_MEMBERS = envint("PIWHEELS_WHEEL_MAX_MEMBERS", 100_000)
PIWHEELS_WHEEL_MAX_RATIO = envint("PIWHEELS_WHEEL_MAX_RATIO", 50)
PIWHEELS_WHEEL_RATIO_MIN_SIZE = envint("PIWHEELS_WHEEL_RATIO_MIN_SIZE", 64 * 1024**2)
# Whether builders strip debug symbols from the wheels they repair (auditwheel --strip):
# sent with every job; docs/portable-wheels.md gives what it saves.
PIWHEELS_STRIP_WHEELS = envbool("PIWHEELS_STRIP_WHEELS", "1")
# Largest .dist-info/METADATA read (into memory, and served beside the wheel).
PIWHEELS_WHEEL_MAX_METADATA = envint("PIWHEELS_WHEEL_MAX_METADATA", 10 * 1024**2)
# An upload's body must keep coming: a read that waits longer than IDLE_TIMEOUT seconds
# for a byte, or a body slower on average than MIN_RATE bytes/s (after IDLE_TIMEOUT
# seconds of grace), ends the request with 408 (under gunicorn, which lends the socket).
PIWHEELS_UPLOAD_IDLE_TIMEOUT = envfloat("PIWHEELS_UPLOAD_IDLE_TIMEOUT", 30)
PIWHEELS_UPLOAD_MIN_RATE = envint("PIWHEELS_UPLOAD_MIN_RATE", 50_000)
# Build output the BuildLog row (and the log page) keeps, in characters: all of it up
# to this, else its head and tail around one note. The whole log is kept compressed
# under PIWHEELS_DATA_DIR/logs/ whatever its size (builds/logs.py).
PIWHEELS_MAX_LOG = envint("PIWHEELS_MAX_LOG", 2 * 1024**2)
# A log sent on its own (PUT /api/v1/builds/<id>/log/, gzip): the largest body in bytes,
# refused with 413 before it is read, and the most it may inflate to, checked as it
# is read (a 413 too).
PIWHEELS_MAX_LOG_UPLOAD = envint("PIWHEELS_MAX_LOG_UPLOAD", 256 * 1024**2)
PIWHEELS_MAX_LOG_INFLATED = envint("PIWHEELS_MAX_LOG_INFLATED", 4 * 1024**3)
# Past LOG_RATIO_MIN_SIZE inflated bytes, a log that inflates more than LOG_MAX_RATIO
# times what has been received is refused (413) at once: a gzip bomb costs a fraction of
# a second, not the CPU of inflating it to PIWHEELS_MAX_LOG_INFLATED. 0: no ratio check.
PIWHEELS_LOG_MAX_RATIO = envint("PIWHEELS_LOG_MAX_RATIO", 100)
PIWHEELS_LOG_RATIO_MIN_SIZE = envint("PIWHEELS_LOG_RATIO_MIN_SIZE", 64 * 1024**2)
# The largest body the farm reads into memory, in bytes: a finish body (JSON) of an
# older agent that sends its log inside it, and admin forms. The API refuses a bigger
# one with a 413 JSON answer before reading it (api/views.py); Django's own check
# (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MiB unless set) is given the same value so that the
# two never disagree.
# 8 MiB: an agent sends its log on its own and at most 1 MiB of it inside finish to a farm
# without the log upload; a 64 MiB body grew a worker by 266 MB while it was parsed.
PIWHEELS_MAX_BODY = envint("PIWHEELS_MAX_BODY", 8 * 1024**2)
DATA_UPLOAD_MAX_MEMORY_SIZE = PIWHEELS_MAX_BODY
# Reading inside a wheel (builds/inspection.py: its ELF objects' ARM attributes) runs in
# a process of its own, stopped after this many seconds (wall and CPU) and bounded to this
# address space in bytes: past either, the wheel is "not known to run on ARMv6".
PIWHEELS_INSPECT_TIMEOUT = envfloat("PIWHEELS_INSPECT_TIMEOUT", 20)
PIWHEELS_INSPECT_MEMORY = envint("PIWHEELS_INSPECT_MEMORY", 1024**3)
# Claims waiting for a job at once in one web process (api/longpoll.py): per builder, and
# in all (unset: under gunicorn, its threads per worker less a quarter, at least 2: 24 of
# `make run`'s 32); past either a claim that finds nothing is a 429 with Retry-After.
# 0: no bound.
PIWHEELS_LONGPOLL_PER_BUILDER = envint("PIWHEELS_LONGPOLL_PER_BUILDER", 2)
PIWHEELS_LONGPOLL_MAX = (envint("PIWHEELS_LONGPOLL_MAX", 0)
                         if os.environ.get("PIWHEELS_LONGPOLL_MAX") else None)
# Seconds a claimed job stays a builder's without a heartbeat.
PIWHEELS_LEASE_SECONDS = envint("PIWHEELS_LEASE_SECONDS", 300)
# Attempts after which a job whose builders keep vanishing goes to the back of the queue.
PIWHEELS_MAX_ATTEMPTS = envint("PIWHEELS_MAX_ATTEMPTS", 3)
# Jobs one builder (one token) may hold at once: a stolen token takes no more.
PIWHEELS_MAX_JOBS_PER_BUILDER = envint("PIWHEELS_MAX_JOBS_PER_BUILDER", 2)
if PIWHEELS_MAX_JOBS_PER_BUILDER < 1:
    raise ImproperlyConfigured("PIWHEELS_MAX_JOBS_PER_BUILDER must be at least 1")
# The module through which the catalogue (packages) reaches the build queue: packages/jobs.py.
PIWHEELS_JOBS = "builds.catalogue"
# What writes the index's page files when a change commits (packages calls it).
PIWHEELS_INDEX_PAGES = "index.pages"
# Hand wheel downloads to nginx with X-Accel-Redirect under this internal location
# (e.g. "/internal-files/"); empty serves them from Django.
PIWHEELS_ACCEL_REDIRECT = os.environ.get("PIWHEELS_ACCEL_REDIRECT", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
# Debian's archive, whose Contents index names the package that provides a missing header,
# library, pkg-config module or tool (refresh_apt_contents): unset, the mirror this
# machine's apt reads (looked up when the index is read, not at every start); the
# architecture and components of the builders' releases; the release assumed for a
# builder that has not said which it runs.
PIWHEELS_DEBIAN_MIRROR = os.environ.get("PIWHEELS_DEBIAN_MIRROR", "").rstrip("/")
PIWHEELS_DEBIAN_ARCH = os.environ.get("PIWHEELS_DEBIAN_ARCH", "armhf")
PIWHEELS_DEBIAN_COMPONENTS = [
    c for c in os.environ.get("PIWHEELS_DEBIAN_COMPONENTS", "main").split(",") if c
]
PIWHEELS_DEBIAN_RELEASE = os.environ.get("PIWHEELS_DEBIAN_RELEASE", "bookworm")
# Seconds pip and uv may keep an index page before revalidating it (a 304 is cheap).
PIWHEELS_INDEX_MAX_AGE = envint("PIWHEELS_INDEX_MAX_AGE", 60)
# What the Pis the farm serves run, for the no-shadow rule (builds/rules.py): a job is
# not built when upstream has a wheel that installs on every one of these platforms with
# this glibc (the oldest the farm serves: 2.31 is Debian Bullseye).
PIWHEELS_TARGET_PLATFORMS = [
    p.strip() for p in os.environ.get("PIWHEELS_TARGET_PLATFORMS", "linux_armv7l").split(",")
    if p.strip()
]
PIWHEELS_TARGET_GLIBC = os.environ.get("PIWHEELS_TARGET_GLIBC", "2.31")
if not all(p.startswith("linux_") for p in PIWHEELS_TARGET_PLATFORMS):
    raise ImproperlyConfigured("PIWHEELS_TARGET_PLATFORMS must be linux_<arch> tags")
try:
    PIWHEELS_TARGET_GLIBC_VERSION = tuple(int(n) for n in PIWHEELS_TARGET_GLIBC.split("."))
    assert len(PIWHEELS_TARGET_GLIBC_VERSION) == 2
except (ValueError, AssertionError):
    raise ImproperlyConfigured(
        f"PIWHEELS_TARGET_GLIBC must look like 2.31, not {PIWHEELS_TARGET_GLIBC!r}"
    ) from None
# Index page files reach the disk (fsync) before they are renamed into place: after a
# power cut a page is old or new, never empty. ext4 (data=ordered) orders this itself.
PIWHEELS_INDEX_FSYNC = envbool("PIWHEELS_INDEX_FSYNC", "true")
# Project pages each web worker keeps rendered in memory (both formats, a few KB each).
PIWHEELS_INDEX_CACHE_ENTRIES = envint("PIWHEELS_INDEX_CACHE_ENTRIES", 20000)

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get(
            "DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"
        ),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        # A kept connection is checked (one round trip) before its first query in each
        # request, so a PostgreSQL restart costs a reconnection, not a 500 per thread.
        conn_health_checks=envbool("DATABASE_CONN_HEALTH_CHECKS", "true"),
    )
}
# Behind PgBouncer in transaction mode: consecutive transactions of one thread may run on
# different server connections, so no named prepared statements (builds/sql.py) and no
# server-side cursors (Django's advice). Session advisory locks (the catalogue sync's)
# need a session of their own too: see docs/deploy.md for which hosts may use this.
DATABASE_TRANSACTION_POOLING = envbool("DATABASE_TRANSACTION_POOLING", "false")
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_TRANSACTION_POOLING
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The `make run` demo: web threads and the task worker write to one file; take the
    # write lock at BEGIN and wait for it rather than failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_q",
    "axes",
    "packages",
    "builds",
    "index",
    "web",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

# Failed logins (the admin's) are limited per (username, client address) by django-axes:
# after PIWHEELS_LOGIN_FAILURES failures that pair is refused, the right password
# included, for PIWHEELS_LOGIN_COOLOFF minutes; other addresses and other users are not.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("PIWHEELS_LOGIN_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envfloat("PIWHEELS_LOGIN_COOLOFF", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every start of a command
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins for this user from your address: try again in "
    f"{envfloat('PIWHEELS_LOGIN_COOLOFF', 15):g} minutes."
)
# The client address: REMOTE_ADDR, or with PIWHEELS_PROXY_COUNT proxies in front (each
# appending to X-Forwarded-For, as nginx's $proxy_add_x_forwarded_for does) the address
# the outermost of them saw.
PIWHEELS_PROXY_COUNT = envint("PIWHEELS_PROXY_COUNT", 0)


def _login_client_ip(request):
    return client_ip(request.META, PIWHEELS_PROXY_COUNT)


AXES_CLIENT_IP_CALLABLE = _login_client_ip

ROOT_URLCONF = "piwheels_site.urls"
WSGI_APPLICATION = "piwheels_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "piwheels",
        "OPTIONS": {"MAX_ENTRIES": 20000},
    },
    # Rendered index pages, keyed by (project id, Project.index_serial): the key moves
    # on with every committed change, so per-process memory is exact for every worker.
    "index": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "piwheels-index",
        "OPTIONS": {"MAX_ENTRIES": PIWHEELS_INDEX_CACHE_ENTRIES},
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = PIWHEELS_DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # builds.queue / builds.publish exceptions as 400/404/409/413 answers.
    "EXCEPTION_HANDLER": "api.exceptions.handle_exception",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "piwheels builder API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # api.urls.BuildIdConverter: what the URL accepts, so that the schema says it.
    "PATH_CONVERTER_OVERRIDES": {
        "build_id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
    },
}

Q_CLUSTER = {
    # Also the prefix of the broker's queue: farms sharing one Redis need names of their own.
    "name": os.environ.get("Q_CLUSTER_NAME", "piwheels"),
    "workers": envint("Q_WORKERS", 2),
    # Seconds between the cluster's checks of its workers; its scheduler runs every 30 of
    # them (and at start when this is 30 or more).
    "guard_cycle": envfloat("Q_GUARD_CYCLE", 0.5),
    "timeout": envint("Q_TIMEOUT", 3000),
    "retry": envint("Q_TIMEOUT", 3000) + 600,
    "max_attempts": 1,
    "catch_up": False,
    "label": "Tasks",
}
if REDIS_URL:
    # Tasks go through Redis; schedules, results and failures stay in the database. Any
    # number of task hosts may run `qcluster`: the scheduler creates a due schedule's
    # task under a row lock (SELECT ... FOR UPDATE), so each run happens once.
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

"""Why a build failed: one cause from a fixed list, read from its log by a table of rules.

classify(output, reason) tries RULES in order and the first rule whose pattern matches
anywhere in the builder's one-line reason or the log wins, so a rule earlier in the table
beats a later one wherever its line is (a full disk explains the compile error after it).
Each rule's pattern names the missing thing in a group `what` (the header, library,
pkg-config module, tool); without one the detail is the whole line that matched. Patterns
start with a literal where they can, which the regex engine finds fast; a pattern whose
line start matters (compiler errors) matches from its literal and takes the line around.

No Django here: the farm calls it when a failure is recorded (builds/publish.py), the
benchmark (bench/failures.py) calls it alone.
"""
import re
from dataclasses import dataclass

# The causes, in the order pages list them. One word each; INTERFACES.md names them.
MISSING_HEADER = "missing-header"
MISSING_LIBRARY = "missing-library"
MISSING_PKGCONFIG = "missing-pkgconfig"
NEEDS_RUST = "needs-rust"
CRATES_FETCH_FAILED = "crates-fetch-failed"
NEEDS_TOOL = "needs-tool"
COMPILE_ERROR = "compile-error"
TIMEOUT = "timeout"
OUT_OF_MEMORY = "out-of-memory"
OUT_OF_DISK = "out-of-disk"
DOWNLOAD_FAILED = "download-failed"
BAD_VERSION = "bad-version"
PYTHON_UNSUPPORTED = "python-unsupported"
OTHER = "other"

CAUSES = (
    MISSING_HEADER, MISSING_LIBRARY, MISSING_PKGCONFIG, NEEDS_RUST, CRATES_FETCH_FAILED,
    NEEDS_TOOL, COMPILE_ERROR, TIMEOUT, OUT_OF_MEMORY, OUT_OF_DISK, DOWNLOAD_FAILED,
    BAD_VERSION, PYTHON_UNSUPPORTED, OTHER,
)

# What each cause means, for pages and the admin.
DESCRIPTIONS = {
    MISSING_HEADER: "a C header is missing",
    MISSING_LIBRARY: "a library is missing at link time",
    MISSING_PKGCONFIG: "a pkg-config module (or meson/CMake dependency) is missing",
    NEEDS_RUST: "needs Rust (cargo) on the builders",
    CRATES_FETCH_FAILED: "the builder could not fetch its Rust crates (its network, "
                         "not the package)",
    NEEDS_TOOL: "a build tool is missing",
    COMPILE_ERROR: "its code does not compile here",
    TIMEOUT: "the build ran out of time",
    OUT_OF_MEMORY: "the build ran out of memory or was killed",
    OUT_OF_DISK: "the builder ran out of disk",
    DOWNLOAD_FAILED: "its source or a build dependency could not be downloaded",
    BAD_VERSION: "its version is not a PEP 440 version",
    PYTHON_UNSUPPORTED: "it does not support this Python version",
    OTHER: "another error",
}

# Causes that a Debian package on the builders can fix: what kind of path provides it.
PROVIDED_BY_PACKAGE = {
    MISSING_HEADER: "header",
    MISSING_LIBRARY: "library",
    MISSING_PKGCONFIG: "pkgconfig",
    NEEDS_TOOL: "tool",
    NEEDS_RUST: "tool",  # detail "cargo"
}

# Causes that say the builder (its network, its disk), not the package, failed: such a
# failure goes back to the queue, for any builder, until the job has had
# PIWHEELS_MAX_ATTEMPTS attempts; only then is it recorded, with this cause, as the
# package's (a crate that really is gone fails on every builder).
BUILDERS_SIDE = frozenset({CRATES_FETCH_FAILED, OUT_OF_DISK})

# A builder's reason that says the farm or the builder, not the package, failed (the agent
# sends "the farm refused ..." when the farm refused an upload, "the builder failed: ..."
# when its own environment did: pip crashed, an index was unreachable). Such a result is
# retried, never recorded as a cause.
FARM_FAULT = re.compile(r"^the (farm refused|builder failed:)")

_TOOL = r"[a-z][a-z0-9_+-]*"  # a bare program name: no slash, no dot (not 'README.md')


@dataclass(frozen=True)
class Rule:
    cause: str
    # Literal text every match contains: the log is searched for these first (str.find,
    # far faster than any pattern), and the pattern runs only on the lines around them.
    # Rules share needles, so that a log is searched for few of them.
    needles: tuple
    pattern: re.Pattern
    detail: str = ""  # fixed detail when the pattern has no `what` (e.g. "cargo")
    # Where a build tries several names in turn (mysqlclient: pkg-config mysqlclient, then
    # mariadb, then libmariadb), the pattern of each try: the detail names them all,
    # "mysqlclient, mariadb or libmariadb", and any one of them would do.
    alternatives: re.Pattern = None


def _rule(cause, needles, pattern, detail="", alternatives=None):
    needles = (needles,) if isinstance(needles, str) else tuple(needles)
    return Rule(cause, needles, re.compile(pattern, re.MULTILINE), detail,
                alternatives and re.compile(alternatives, re.MULTILINE))


_FOUND = "found"  # not found, found: NO, no matching ... found, file not found
_NO_FILE = "No such file"
_RROR = "rror"  # error: ..., Error, MemoryError, fatal error

# Precedence is table order. Resource limits and the builder's own reasons first (they
# explain any error after them), then what pip says before building, then what is missing,
# then the package's own code.
RULES = (
    _rule(TIMEOUT, "timed out", r"^build timed out after"),
    _rule(OUT_OF_DISK, "No space left", r"No space left on device"),
    _rule(OUT_OF_MEMORY, "Kill", r"Killed signal terminated program (?P<what>\S+)"),
    _rule(OUT_OF_MEMORY, ("memory", "Kill", _RROR, "status -9"),
          r"virtual memory exhausted|out of memory allocating|internal compiler error: Killed"
          r"|std::bad_alloc|\bMemoryError\b|Cannot allocate memory"
          r"|^pip wheel exited with status -9$"),
    _rule(PYTHON_UNSUPPORTED, "different", r"requires a different Python: (?P<what>[^\n]+)"),
    _rule(PYTHON_UNSUPPORTED, "different",
          r"require a different python version: (?P<what>[^;\n]+)"),
    _rule(PYTHON_UNSUPPORTED, "No module named",
          r"No module named '(?P<what>distutils|imp|asynchat|asyncore|smtpd|pipes|cgi"
          r"|telnetlib)'"),
    _rule(PYTHON_UNSUPPORTED, _RROR, r"module 'pkgutil' has no attribute 'ImpImporter'"),
    # Headers CPython stopped shipping (3.11): C generated by an old Cython includes them.
    _rule(PYTHON_UNSUPPORTED, _NO_FILE, r"fatal error: (?P<what>longintrepr\.h): No such file"),
    _rule(BAD_VERSION, "Invalid", r"Invalid requirement: '(?P<what>[^'\n]+)'"),
    _rule(BAD_VERSION, "Invalid", r"InvalidVersion: Invalid version: '(?P<what>[^'\n]+)'"),
    _rule(BAD_VERSION, "inconsistent", r"has inconsistent version: (?P<what>[^\n]+)"),
    _rule(DOWNLOAD_FAILED, _FOUND, r"No matching distribution found for (?P<what>\S+)"),
    _rule(DOWNLOAD_FAILED, ("HASHES", _RROR),
          r"THESE PACKAGES DO NOT MATCH THE HASHES|HTTP error \d+ while getting"
          r"|ReadTimeoutError|NewConnectionError|Temporary failure in name resolution"),
    _rule(NEEDS_RUST, ("Rust", "cargo"),
          r"can't find Rust compiler|Cargo, the Rust package manager, is not"
          r"|Unable to find cargo|No such file or directory: 'cargo'"
          r"|cargo: (?:command )?not found|requires? Rust \S+", detail="cargo"),
    _rule(CRATES_FETCH_FAILED, "dependency", r"failed to get `(?P<what>[^`]+)` as a dependency"),
    _rule(CRATES_FETCH_FAILED, ("registry", "download", "offline"),
          r"Unable to update registry `(?P<what>[^`]+)`|failed to download from `(?P<url>[^`]+)`"
          r"|attempting to make an HTTP request, but --offline"),
    _rule(CRATES_FETCH_FAILED, _FOUND,
          r"no matching package named `(?P<what>[^`]+)` found\s+location searched: crates\.io"),
    _rule(MISSING_PKGCONFIG, _FOUND,
          r"Package '?(?P<what>[\w.+-]+)'? was not found in the pkg-config"),
    _rule(MISSING_PKGCONFIG, _FOUND, r"No package '(?P<what>[^']+)' found"),
    _rule(MISSING_PKGCONFIG, _FOUND, r"Dependency \"?(?P<what>[\w.+-]+)\"? not found"),
    _rule(MISSING_PKGCONFIG, _FOUND, r"Run-time dependency (?P<what>\S+) found: NO"),
    _rule(MISSING_PKGCONFIG, "pkg-config",
          r"pkg-config --exists (?P<what>[\w.+-]+)' returned non-zero",
          alternatives=r"pkg-config --exists ([\w.+-]+)' returned non-zero"),
    _rule(MISSING_PKGCONFIG, "NOT find", r"Could NOT find (?P<what>\w+)"),
    _rule(MISSING_PKGCONFIG, "configuration file",
          r"package configuration file provided by \"(?P<what>\w+)\""),
    _rule(MISSING_HEADER, _NO_FILE, r"fatal error: (?P<what>[^\s:']+): No such file or directory"),
    _rule(MISSING_HEADER, _FOUND, r"fatal error: '(?P<what>[^']+)' file not found"),
    _rule(MISSING_LIBRARY, "cannot find", r"cannot find -l(?P<what>[\w.+-]+)"),
    _rule(MISSING_LIBRARY, _FOUND, r"library not found for -l(?P<what>[\w.+-]+)"),
    _rule(NEEDS_TOOL, _NO_FILE, rf"No such file or directory: '(?P<what>{_TOOL})'"),
    _rule(NEEDS_TOOL, _NO_FILE, rf"command '(?P<what>{_TOOL})' failed: No such file or directory"),
    _rule(NEEDS_TOOL, _FOUND, rf": \d+: (?P<what>{_TOOL}): not found"),
    _rule(NEEDS_TOOL, _FOUND, rf"(?P<what>{_TOOL}): command not found"),
    _rule(NEEDS_TOOL, _FOUND, rf"(?P<what>{_TOOL}) executable not found"),
    _rule(NEEDS_TOOL, _FOUND, rf"(?P<what>{_TOOL}_config) not found"),
    _rule(NEEDS_TOOL, ("installed", "required"),
          r"(?P<what>CMake) must be installed|(?P<what2>cmake) is required"),
    _rule(COMPILE_ERROR, _RROR, r"(?::\d+)+: (?:fatal )?error: "),
    _rule(COMPILE_ERROR, _RROR, r"^\s*error\[E\d+\]: "),  # rustc
    _rule(COMPILE_ERROR, _RROR, r"Error compiling Cython file"),
)
NEEDLES = tuple(dict.fromkeys(n for rule in RULES for n in rule.needles))

# How much of a log is read, from its end: pip stops at the first failure, so what says
# why is near the end (before pip's own summary and a traceback or two). The smallest
# window is tried first; a larger one only when nothing in it explains the failure.
WINDOWS = (4 * 1024, 32 * 1024)
LINES_PER_NEEDLE = 200  # the lines around one needle that the patterns look at, at most


# pip's own summary lines: they say *that* the build failed, not why.
_BOILERPLATE = re.compile(
    r"failed building wheel|failed to build|failed-wheel-build|subprocess-exited-with-error"
    r"|metadata-generation-failed|could not build wheels|did not run successfully"
    r"|returned non-zero exit status",
    re.IGNORECASE,
)
_ERROR_LINE = re.compile(
    r"^[ \t]*(?:[\w.]*Error|ERROR|error|Exception|CMake Error)\b:?[^\n]*", re.MULTILINE
)

DETAIL_MAX = 200


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    detail: str  # the missing thing (lber.h, cairo, curl-config), or the line that says why

    @property
    def fixable_by_package(self):
        return self.cause in PROVIDED_BY_PACKAGE


def is_farm_fault(reason):
    """True when the builder's REASON says the farm (refused an upload) or the builder's
    environment failed, not the package: such a result is retried, not recorded as the
    package's failure."""
    return bool(FARM_FAULT.match(reason or ""))


def classify(output, reason=""):
    """The Diagnosis of a failed build from its log OUTPUT and the builder's one-line
    REASON (e.g. "build timed out after 10800s")."""
    output = output or ""
    for size in WINDOWS:
        # The reason first, then the log's last SIZE characters from a line start.
        cut = output.find("\n", len(output) - size) + 1 if len(output) > size else 0
        text = f"{reason or ''}\n{output[cut:]}"
        found = _match(text)
        if found is not None or not cut:
            break
    if found is not None:
        return found
    return Diagnosis(OTHER, _last_error(text[-WINDOWS[0]:])
                     or (reason or "").strip()[:DETAIL_MAX])


def _match(text):
    """The Diagnosis of the first rule that matches TEXT, or None."""
    lines = {}  # needle -> the start of each line holding it; each needle searched once
    for needle in NEEDLES:
        at = text.find(needle)
        if at >= 0:
            starts = lines[needle] = []
            while at >= 0 and len(starts) < LINES_PER_NEEDLE:
                starts.append(text.rfind("\n", 0, at) + 1)
                end = text.find("\n", at)
                at = text.find(needle, end) if end >= 0 else -1
    if not lines:
        return None
    for rule in RULES:
        for needle in rule.needles:
            for start in lines.get(needle, ()):
                window = _window(text, start)
                match = rule.pattern.search(window)
                if match is not None:
                    detail = _detail(rule, match, window)
                    if rule.alternatives is not None:
                        detail = _one_of(rule.alternatives.findall(text)) or detail
                    return Diagnosis(rule.cause, detail)
    return None


def _window(text, start):
    """The line of TEXT at START and the next one (a pattern may span two lines)."""
    end = text.find("\n", start)
    end = text.find("\n", end + 1) if end >= 0 else -1
    return text[start:end if end >= 0 else len(text)]


def _detail(rule, match, text):
    found = {k: v for k, v in match.groupdict().items() if v}
    if found:
        what = found.get("what") or next(iter(found.values()))
        if rule.cause == NEEDS_TOOL and what == "CMake":
            what = "cmake"
        return what.strip().strip("'\"")[:DETAIL_MAX]
    if rule.detail:
        return rule.detail
    return _line_at(text, match.start())


def _one_of(names):
    """'a', 'a or b', 'a, b or c' of NAMES (each once, in order); split_alternatives()
    reads it back."""
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        return names[0] if names else ""
    return (", ".join(names[:-1]) + " or " + names[-1])[:DETAIL_MAX]


def split_alternatives(detail):
    """The names a DETAIL offers as alternatives ('mysqlclient, mariadb or libmariadb')."""
    return [name for name in re.split(r",\s*|\s+or\s+", (detail or "").strip()) if name]


def _line_at(text, at):
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start:end if end >= 0 else len(text)].strip()[:DETAIL_MAX]


def _last_error(text):
    """The last error line of TEXT that is not pip's summary of the failure."""
    last = ""
    for match in _ERROR_LINE.finditer(text):
        line = match.group(0).strip()
        if not _BOILERPLATE.search(line):
            last = line
    return last[:DETAIL_MAX]


def summary(cause, detail, package=""):
    """One line for people: 'needs libldap-dev on the builders (lber.h is missing)'."""
    if not cause:
        return ""
    what = {
        MISSING_HEADER: f"{detail} is missing",
        MISSING_LIBRARY: f"the library -l{detail} is missing",
        MISSING_PKGCONFIG: f"the pkg-config module {detail} is missing",
        NEEDS_TOOL: f"the tool {detail} is missing",
        NEEDS_RUST: "Rust (cargo) is missing",
    }.get(cause)
    if package and what:
        return f"needs {package} on the builders ({what})"
    if what:
        return what
    description = DESCRIPTIONS.get(cause, cause)
    return f"{description}: {detail}" if detail else description

"""Shapes of the builder API's bodies (docs/builder-api.md): shape and range checks
only (so that the schema says what is refused); the rules live in builds.queue and
builds.publish."""
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from builds.wheels import MAX_FILENAME
from lib import debian, platforms

MAX_WAIT = 60
# Longest build duration a result may report, in seconds (30 days: any real build is
# far shorter; a bigger number would overflow the database's interval).
MAX_DURATION = 30 * 24 * 3600
# A file's size fits the database's bigint.
MAX_SIZE = 2**63 - 1


# JSON types as the schema states them: DRF's fields would also take "true" for a
# boolean, "5" for a number or 5 for a string, which the schema says are invalid.

class Text(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)  # lengths as the schema counts them
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Integer(serializers.IntegerField):
    def to_internal_value(self, data):
        whole = isinstance(data, int) or (isinstance(data, float) and data.is_integer())
        if isinstance(data, bool) or not whole:  # 5.0 is an integer to JSON Schema
            self.fail("invalid")
        return super().to_internal_value(data)


class Number(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class Boolean(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class TextMatching(serializers.RegexField):
    def __init__(self, regex, **kwargs):
        kwargs.setdefault("trim_whitespace", False)  # the pattern as the schema states it
        super().__init__(regex, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Checked(Text):
    """Text that CHECK (a function of the text) accepts, whole; the schema states it as
    SCHEMA_PATTERN (an ECMA regex, where `$` is the end of the text). Subclasses set
    both and MESSAGE."""
    check = None
    message = "invalid"

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if data and not type(self).check(data):
            raise serializers.ValidationError(self.message.format(value=data[:100]))
        return data


# glibc 2.17 (manylinux2014) up to 2.999, no leading zeros: what fits a manylinux name.
@extend_schema_field({"type": "string", "pattern": r"^(2\.(1[7-9]|[2-9][0-9]|[1-9][0-9]{2}))?$",
                      "maxLength": 7})
class GlibcField(Checked):
    check = staticmethod(platforms.valid_glibc)
    message = ("glibc must be a version such as '2.36' (ASCII digits, from 2.17 up to, "
               "not including, 3.0), not {value!r}")


@extend_schema_field({"type": "string", "pattern": r"^([a-z][a-z0-9-]{0,31})?$",
                      "maxLength": 32})
class OsReleaseField(Checked):
    check = staticmethod(platforms.valid_os_release)
    message = ("os_release must be an OS release codename such as 'bookworm' (lower case "
               "ASCII letters, digits, '-'), not {value!r}")


@extend_schema_field({"type": "string", "pattern": r"^[a-z][a-z0-9-]{1,29}$"})
class ReportReleaseField(OsReleaseField):
    """The release of a package report: 2 to 30 characters (builds.apt.RELEASE)."""

    def __init__(self, **kwargs):
        super().__init__(min_length=2, max_length=30, **kwargs)


@extend_schema_field({"type": "string", "minLength": 2, "maxLength": debian.MAX_NAME,
                      "pattern": r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$"})
class DebianPackageField(Checked):
    """A Debian package name (lib/debian.py: the same check as the package report's)."""
    check = staticmethod(debian.is_package_name)
    message = "{value!r} is not a Debian package name"

    def __init__(self, **kwargs):
        super().__init__(min_length=2, max_length=debian.MAX_NAME, **kwargs)


# A wheel filename as packaging writes it (builds.wheels checks the rest): the schema's
# pattern and the server's check are the same expression.
WHEEL_FILENAME = (r"[a-z0-9_]+-[a-z0-9_.!+]+(-[0-9][A-Za-z0-9_]*)?-[a-z0-9_.]+-[a-z0-9_.]+"
                  r"-[a-z0-9_.]+\.whl")
_WHEEL_FILENAME = re.compile(rf"\A{WHEEL_FILENAME}\Z", re.ASCII)
FILENAME_SCHEMA = {"type": "string", "pattern": f"^{WHEEL_FILENAME}$",
                   "maxLength": MAX_FILENAME}


@extend_schema_field(FILENAME_SCHEMA)
class FilenameField(Checked):
    check = staticmethod(lambda text: bool(_WHEEL_FILENAME.match(text)))
    message = "{value!r} is not a wheel filename as packaging writes it"

    def __init__(self, **kwargs):
        super().__init__(min_length=1, max_length=MAX_FILENAME, **kwargs)


_ABI = re.compile(r"\A[a-z0-9_]{1,20}\Z", re.ASCII)


@extend_schema_field({"type": "string", "pattern": "^[a-z0-9_]{1,20}$"})
class AbiField(Checked):
    """An ABI tag's shape (cp311); whether the farm builds for it is the queue's
    answer (a 400 naming it)."""
    check = staticmethod(lambda text: bool(_ABI.match(text)))
    message = "abi must be an ABI tag such as 'cp311', not {value!r}"

    def __init__(self, **kwargs):
        super().__init__(min_length=1, max_length=20, **kwargs)


class LogField(Text):
    """Build output: NULs dropped (PostgreSQL text cannot hold them), never refused."""

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, default="", **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).replace("\x00", "")


class ClaimSerializer(serializers.Serializer):
    abi = AbiField()
    platform = Text(max_length=100, allow_blank=True, default="")
    python_version = Text(max_length=50, allow_blank=True, default="")
    os = Text(max_length=200, allow_blank=True, default="")
    # VERSION_CODENAME and glibc version; optional for agents older than them.
    os_release = OsReleaseField(allow_blank=True, default="", max_length=32)
    glibc = GlibcField(allow_blank=True, default="", max_length=7)
    wait = Number(min_value=0, max_value=MAX_WAIT, default=30)
    # sha256 of the builder's installed Debian packages (sorted names, one a line): when
    # the farm's copy differs, the answer asks for the list (X-Packages-Wanted).
    packages_digest = TextMatching(r"^[0-9a-f]{64}$", required=False)


class JobSerializer(serializers.Serializer):
    build_id = serializers.IntegerField()
    project = serializers.CharField()
    normalized_name = serializers.CharField()
    version = serializers.CharField()
    abi = serializers.CharField()
    arch = serializers.CharField(help_text="the architecture the job is for, e.g. aarch64")
    index_url = serializers.CharField()
    extra_index_urls = serializers.ListField(child=serializers.CharField())
    lease_seconds = serializers.IntegerField()
    attempt = serializers.IntegerField()
    # Strip debug symbols from the repaired wheels (PIWHEELS_STRIP_WHEELS).
    strip = serializers.BooleanField()


class PackagesSerializer(serializers.Serializer):
    os_release = ReportReleaseField()
    abi = AbiField(required=False)
    packages = serializers.ListField(
        child=DebianPackageField(), max_length=50_000, allow_empty=False
    )


class PackagesRecordedSerializer(serializers.Serializer):
    digest = serializers.CharField()
    requeued = serializers.IntegerField()


class FileSerializer(serializers.Serializer):
    filename = FilenameField()
    size = Integer(min_value=0, max_value=MAX_SIZE)
    sha256 = TextMatching(r"^[0-9a-fA-F]{64}$")
    requires_python = Text(max_length=200, allow_blank=True, default="")
    # Debian packages the wheel's compiled code needs: shown on the project page's
    # `sudo apt install` line, so checked exactly as a package report's names are.
    dependencies = serializers.ListField(
        child=DebianPackageField(), default=list, max_length=500
    )


class FinishSerializer(serializers.Serializer):
    success = Boolean()
    duration = Number(min_value=0, max_value=MAX_DURATION, default=0)
    # The log, from agents that do not send it on its own (PUT .../log/ is preferred):
    # the body as a whole is bounded by PIWHEELS_MAX_BODY.
    output = LogField()
    failure_reason = LogField(max_length=10000)
    files = FileSerializer(many=True, default=list)


class FinishedSerializer(serializers.Serializer):
    build_id = serializers.IntegerField()
    state = serializers.CharField()


class UploadedSerializer(serializers.Serializer):
    filename = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class LogReceivedSerializer(serializers.Serializer):
    size = serializers.IntegerField(help_text="bytes received (compressed)")
    inflated = serializers.IntegerField(help_text="bytes of log they inflate to")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="why, in one sentence")

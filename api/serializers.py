"""Shapes of the builder API's bodies (docs/builder-api.md): shape and range checks
only (so that the schema says what is refused); the rules live in builds.queue and
builds.publish."""
from rest_framework import serializers

from lib import platforms

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


class LogField(Text):
    """Build output: NULs dropped (PostgreSQL text cannot hold them), never refused."""

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, default="", **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).replace("\x00", "")


class ClaimSerializer(serializers.Serializer):
    abi = Text(min_length=1, max_length=20)
    platform = Text(max_length=100, allow_blank=True, default="")
    python_version = Text(max_length=50, allow_blank=True, default="")
    os = Text(max_length=200, allow_blank=True, default="")
    # VERSION_CODENAME and glibc version; optional for agents older than them.
    os_release = TextMatching(
        platforms.OS_RELEASE, allow_blank=True, default="",
        error_messages={"invalid": "os_release must be an OS release codename such as "
                                   "'bookworm' (lower case letters, digits, '-')"},
    )
    glibc = TextMatching(
        platforms.GLIBC, allow_blank=True, default="",
        error_messages={"invalid": "glibc must be a version such as '2.36'"},
    )
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
    index_url = serializers.CharField()
    extra_index_urls = serializers.ListField(child=serializers.CharField())
    lease_seconds = serializers.IntegerField()
    attempt = serializers.IntegerField()
    # Strip debug symbols from the repaired wheels (PIWHEELS_STRIP_WHEELS).
    strip = serializers.BooleanField()


class PackagesSerializer(serializers.Serializer):
    os_release = serializers.RegexField(r"^[a-z][a-z0-9-]{1,29}$")
    abi = serializers.CharField(max_length=20, required=False)
    packages = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=50_000, allow_empty=False
    )


class PackagesRecordedSerializer(serializers.Serializer):
    digest = serializers.CharField()
    requeued = serializers.IntegerField()


class FileSerializer(serializers.Serializer):
    filename = Text(min_length=1, max_length=255)
    size = Integer(min_value=0, max_value=MAX_SIZE)
    sha256 = TextMatching(r"^[0-9a-fA-F]{64}$")
    requires_python = Text(max_length=200, allow_blank=True, default="")
    dependencies = serializers.ListField(
        child=Text(max_length=200), default=list, max_length=500
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

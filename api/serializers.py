"""Shapes of the builder API's bodies (docs/builder-api.md): shape checks only; the
rules live in builds.queue and builds.publish."""
from rest_framework import serializers

from lib import platforms

MAX_WAIT = 60


class ClaimSerializer(serializers.Serializer):
    abi = serializers.CharField(max_length=20)
    platform = serializers.CharField(max_length=100, allow_blank=True, default="")
    python_version = serializers.CharField(max_length=50, allow_blank=True, default="")
    os = serializers.CharField(max_length=200, allow_blank=True, default="")
    # VERSION_CODENAME and glibc version; optional for agents older than them.
    os_release = serializers.RegexField(
        platforms.OS_RELEASE, allow_blank=True, default="",
        error_messages={"invalid": "os_release must be an OS release codename such as "
                                   "'bookworm' (lower case letters, digits, '-')"},
    )
    glibc = serializers.RegexField(
        platforms.GLIBC, allow_blank=True, default="",
        error_messages={"invalid": "glibc must be a version such as '2.36'"},
    )
    wait = serializers.FloatField(min_value=0, max_value=MAX_WAIT, default=30)
    # sha256 of the builder's installed Debian packages (sorted names, one a line): when
    # the farm's copy differs, the answer asks for the list (X-Packages-Wanted).
    packages_digest = serializers.RegexField(r"^[0-9a-f]{64}$", required=False)


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
    filename = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=0)
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$")
    requires_python = serializers.CharField(max_length=200, allow_blank=True, default="")
    dependencies = serializers.ListField(
        child=serializers.CharField(max_length=200), default=list, max_length=500
    )


class FinishSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    duration = serializers.FloatField(min_value=0, default=0)
    output = serializers.CharField(allow_blank=True, trim_whitespace=False, default="")
    failure_reason = serializers.CharField(allow_blank=True, default="")
    files = FileSerializer(many=True, default=list)


class FinishedSerializer(serializers.Serializer):
    build_id = serializers.IntegerField()
    state = serializers.CharField()


class UploadedSerializer(serializers.Serializer):
    filename = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()

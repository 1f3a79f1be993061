"""The builder API (docs/builder-api.md): one view per builder action. Each checks the
body's shape, calls builds.queue / builds.publish, and answers a small dict; domain
exceptions become HTTP answers in api/exceptions.py."""
import json

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers
from api.authentication import BuilderTokenAuthentication
from api.bodies import body_chunks
from api.exceptions import TooLarge
from api.longpoll import wait_for_job
from api.permissions import IsEnabledBuilder
from builds import depwait, logs, publish, queue
from lib import platforms


def refusal(description):
    """A refusal in the schema: {"detail": "<one sentence>"}, and when it is given."""
    return OpenApiResponse(response=serializers.DetailSerializer, description=description)


ERRORS = {
    401: refusal("no token, or a wrong one"),
    403: refusal("this builder is disabled"),
}
JOB_ERRORS = {
    **ERRORS,
    404: refusal("no such build"),
    409: refusal("the job is no longer this builder's: stop working on it"),
}


# Deepest nesting of arrays and objects a body may have: the API's deepest is 3 (finish:
# files, a file, its dependencies). Deeper is a 400, never a RecursionError (a 500).
MAX_JSON_DEPTH = 16


def json_depth_over(data, limit):
    """Whether DATA (parsed JSON) nests arrays and objects deeper than LIMIT; iterative,
    so that no depth makes it recurse."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((item, depth + 1) for item in value if isinstance(item, (dict, list)))
    return False


class UnicodeJSONParser(JSONParser):
    """JSON whose strings are valid Unicode: a lone surrogate escape ("\\ud800") is
    valid JSON but no text the database or a log file can hold, so it is a 400. JSON
    nested deeper than MAX_JSON_DEPTH is a 400 too (the parser's own recursion limit,
    about 1,000, would otherwise end in a RecursionError)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
        if json_depth_over(data, MAX_JSON_DEPTH):
            raise ParseError(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError("the body holds text that is not valid Unicode") from None
        return data


class BuilderView(APIView):
    authentication_classes = [BuilderTokenAuthentication]
    permission_classes = [IsEnabledBuilder]
    parser_classes = [UnicodeJSONParser]
    renderer_classes = [JSONRenderer]


class Claim(BuilderView):
    @extend_schema(
        operation_id="claim",
        summary="Wait up to `wait` seconds for a job for this builder's ABI and "
                "architecture (that of its `platform`: linux_aarch64 -> aarch64).",
        request=serializers.ClaimSerializer,
        responses={
            200: serializers.JobSerializer,
            204: OpenApiResponse(description="nothing to build within `wait` seconds"),
            400: refusal("bad body, or the farm does not build for that ABI, or not on "
                         "this builder's OS release, or not for its architecture"),
            429: refusal("nothing to build now, and too many claims (of this builder, or "
                         "in all) already wait: ask again after Retry-After seconds"),
            **ERRORS,
        },
    )
    def post(self, request):
        body = serializers.ClaimSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        facts = body.validated_data
        builder = request.auth
        abi = queue.find_abi(facts["abi"])
        queue.check_in(builder, timezone.now(), abi, facts["platform"],
                       facts["python_version"], facts["os"], facts["os_release"],
                       facts["glibc"])
        queue.check_release(abi, facts["os_release"], facts["glibc"])
        arch = platforms.job_arch(facts["platform"])
        queue.check_arch(abi, arch)
        build = wait_for_job(builder, abi, arch, facts["wait"], timezone.now)
        wanted = depwait.wants_packages(builder, facts.get("packages_digest"))
        headers = {"X-Packages-Wanted": "1"} if wanted else None
        if build is None:
            return Response(status=204, headers=headers)
        version = build.version
        return Response(headers=headers, data={
            "build_id": build.id,
            "project": version.project.name,
            "normalized_name": version.project.normalized_name,
            "version": version.version,
            "abi": build.abi.tag,
            "arch": build.arch,
            "index_url": f"{settings.PIWHEELS_PYPI_URL}/simple/",
            "extra_index_urls": [request.build_absolute_uri("/simple/")],
            "lease_seconds": settings.PIWHEELS_LEASE_SECONDS,
            "attempt": build.attempt,
            "strip": settings.PIWHEELS_STRIP_WHEELS,
        })


class Packages(BuilderView):
    @extend_schema(
        operation_id="packages",
        summary="Report the Debian packages installed on this builder (dpkg-query -W); "
                "failed builds that waited for one of them are queued again.",
        request=serializers.PackagesSerializer,
        responses={200: serializers.PackagesRecordedSerializer,
                   400: OpenApiResponse(description="bad body"), **ERRORS},
    )
    def post(self, request):
        body = serializers.PackagesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = body.validated_data
        abi = queue.find_abi(report["abi"]) if report.get("abi") else None
        digest, requeued = depwait.record_packages(
            request.auth, report["os_release"], report["packages"], abi=abi,
            now=timezone.now())
        return Response({"digest": digest, "requeued": requeued})


class Heartbeat(BuilderView):
    @extend_schema(
        operation_id="heartbeat", summary="Extend the lease of a held job.", request=None,
        responses={204: OpenApiResponse(description="lease extended"), **JOB_ERRORS},
    )
    def post(self, request, build_id):
        queue.hold(build_id, builder=request.auth, now=timezone.now())
        return Response(status=204)


class Release(BuilderView):
    @extend_schema(
        operation_id="release", summary="Give a held job back to the queue.", request=None,
        responses={204: OpenApiResponse(description="job back in the queue"), **JOB_ERRORS},
    )
    def post(self, request, build_id):
        queue.release(build_id, builder=request.auth, now=timezone.now())
        return Response(status=204)


class UploadFile(BuilderView):
    # No parsers: the body is read raw from the WSGI stream, 64 KiB at a time, and never
    # held whole in memory (request.data is never touched).
    parser_classes = []

    @extend_schema(
        operation_id="upload_file",
        summary="Upload one wheel of a held job (raw bytes as the body).",
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "X-Sha256", {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                OpenApiParameter.HEADER, required=True, description="hex sha256 of the body",
            ),
            OpenApiParameter(
                "filename",
                serializers.FILENAME_SCHEMA,
                OpenApiParameter.PATH, description="the wheel's file name, as pip names it",
            ),
        ],
        responses={
            201: serializers.UploadedSerializer,
            200: serializers.UploadedSerializer,
            400: refusal("bad hash, size, filename or wheel"),
            408: refusal("the body stopped coming, or came too slowly"),
            413: refusal("over the upload size limit"),
            **JOB_ERRORS,
            409: refusal("the job is no longer this builder's, or other bytes were "
                         "already received under this name"),
        },
    )
    def put(self, request, build_id, filename):
        size = declared_size(request)
        created = publish.receive_file(
            build_id, request.auth, filename, body_chunks(request._request, size),
            size, request.headers.get("X-Sha256"), timezone.now(),
        )
        return Response(
            {"filename": filename, "size": size,
             "sha256": request.headers.get("X-Sha256", "").lower()},
            status=201 if created else 200,
        )


class UploadLog(BuilderView):
    # The body is read raw, like a wheel's: streamed to disk, inflated as it is read.
    parser_classes = []

    @extend_schema(
        operation_id="upload_log",
        summary="Send the whole build log of a held job, gzip-compressed, before finish.",
        request={"application/gzip": OpenApiTypes.BINARY},
        responses={
            201: serializers.LogReceivedSerializer,
            400: refusal("not one whole gzip stream, or no Content-Length"),
            408: refusal("the body stopped coming, or came too slowly"),
            413: refusal("over the compressed or the inflated log limit"),
            **JOB_ERRORS,
        },
    )
    def put(self, request, build_id):
        size = declared_size(request)
        size, inflated = logs.receive_log(build_id, request.auth,
                                          body_chunks(request._request, size), size,
                                          timezone.now())
        return Response({"size": size, "inflated": inflated}, status=201)


def declared_size(request):
    """The body's Content-Length, or None."""
    length = request.META.get("CONTENT_LENGTH") or ""
    return int(length) if length.isdigit() else None


class Finish(BuilderView):
    @extend_schema(
        operation_id="finish",
        summary="Report a job's result; on success its uploaded files are published.",
        request=serializers.FinishSerializer,
        responses={
            200: serializers.FinishedSerializer,
            400: refusal("bad body, or a listed file was not uploaded"),
            413: refusal("body over PIWHEELS_MAX_BODY (8 MiB): "
                         "send the log on its own (upload_log)"),
            **JOB_ERRORS,
        },
    )
    def post(self, request, build_id):
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > settings.PIWHEELS_MAX_BODY:
            raise TooLarge(
                f"the result is over {settings.PIWHEELS_MAX_BODY} bytes: send the log on "
                "its own (PUT .../log/) or less of it"
            )
        body = serializers.FinishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = body.validated_data
        build = publish.finish(
            build_id, request.auth, success=result["success"], duration=result["duration"],
            output=result["output"], failure_reason=result["failure_reason"],
            files=result["files"], now=timezone.now(),
        )
        return Response({"build_id": build.id, "state": build.state})

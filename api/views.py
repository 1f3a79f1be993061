"""The builder API (docs/builder-api.md): one view per builder action. Each checks the
body's shape, calls builds.queue / builds.publish, and answers a small dict; domain
exceptions become HTTP answers in api/exceptions.py."""
from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers
from api.authentication import BuilderTokenAuthentication
from api.bodies import body_chunks
from api.longpoll import wait_for_job
from api.permissions import IsEnabledBuilder
from builds import depwait, publish, queue

# A finish body carries the whole build log: past this it is refused unread.
MAX_FINISH_BODY = 64 * 1024**2

ERRORS = {
    401: OpenApiResponse(description="no token, or a wrong one"),
    403: OpenApiResponse(description="this builder is disabled"),
}
JOB_ERRORS = {
    **ERRORS,
    404: OpenApiResponse(description="no such build"),
    409: OpenApiResponse(description="the job is no longer this builder's: stop working on it"),
}


class BuilderView(APIView):
    authentication_classes = [BuilderTokenAuthentication]
    permission_classes = [IsEnabledBuilder]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]


class Claim(BuilderView):
    @extend_schema(
        operation_id="claim",
        summary="Wait up to `wait` seconds for a job for this builder's ABI.",
        request=serializers.ClaimSerializer,
        responses={
            200: serializers.JobSerializer,
            204: OpenApiResponse(description="nothing to build within `wait` seconds"),
            400: OpenApiResponse(description="bad body, or the farm does not build for that "
                                             "ABI, or not on this builder's OS release"),
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
        build = wait_for_job(builder, abi, facts["wait"], timezone.now)
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
            "index_url": f"{settings.PIWHEELS_PYPI_URL}/simple/",
            "extra_index_urls": [request.build_absolute_uri("/simple/")],
            "lease_seconds": settings.PIWHEELS_LEASE_SECONDS,
            "attempt": build.attempt,
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
        parameters=[OpenApiParameter("X-Sha256", str, OpenApiParameter.HEADER, required=True,
                                     description="hex sha256 of the body")],
        responses={
            201: serializers.UploadedSerializer,
            200: serializers.UploadedSerializer,
            400: OpenApiResponse(description="bad hash, size, filename or wheel"),
            408: OpenApiResponse(description="the body stopped coming, or came too slowly"),
            413: OpenApiResponse(description="over the upload size limit"),
            **JOB_ERRORS,
            409: OpenApiResponse(description="the job is no longer this builder's, or other "
                                             "bytes were already received under this name"),
        },
    )
    def put(self, request, build_id, filename):
        length = request.META.get("CONTENT_LENGTH") or ""
        size = int(length) if length.isdigit() else None
        created = publish.receive_file(
            build_id, request.auth, filename, body_chunks(request._request, size),
            size, request.headers.get("X-Sha256"), timezone.now(),
        )
        return Response(
            {"filename": filename, "size": size,
             "sha256": request.headers.get("X-Sha256", "").lower()},
            status=201 if created else 200,
        )


class Finish(BuilderView):
    @extend_schema(
        operation_id="finish",
        summary="Report a job's result; on success its uploaded files are published.",
        request=serializers.FinishSerializer,
        responses={
            200: serializers.FinishedSerializer,
            400: OpenApiResponse(description="bad body, or a listed file was not uploaded"),
            413: OpenApiResponse(description="body over 64 MiB"),
            **JOB_ERRORS,
        },
    )
    def post(self, request, build_id):
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > MAX_FINISH_BODY:
            exc = APIException("the result is over 64 MiB: send the end of the log only")
            exc.status_code = 413
            raise exc
        body = serializers.FinishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = body.validated_data
        build = publish.finish(
            build_id, request.auth, success=result["success"], duration=result["duration"],
            output=result["output"], failure_reason=result["failure_reason"],
            files=result["files"], now=timezone.now(),
        )
        return Response({"build_id": build.id, "state": build.state})

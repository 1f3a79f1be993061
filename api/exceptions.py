"""Every refusal of the API as JSON `{"detail": "<one sentence>"}` with its status.

handle_exception (DRF's EXCEPTION_HANDLER) answers for the views: domain exceptions of
builds.queue / builds.publish / builds.logs / builds.wheels, DRF's own (a validation
error's field messages become one sentence), and Django's refusals raised while a body
is read (RequestDataTooBig -> 413, other SuspiciousOperation -> 400). What never
reaches a view (a path no view matches, an error in a middleware) is answered by
not_found and the handler400/handler500 of piwheels_site.urls, through json_error.
"""
import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import APIException, Throttled, ValidationError
from rest_framework.views import exception_handler

from api.longpoll import TooManyWaiting
from builds.depwait import BadPackageList
from builds.logs import LogRefused, LogTooLarge
from builds.publish import (
    FinishRefused,
    UploadConflict,
    UploadRefused,
    UploadTimedOut,
    UploadTooLarge,
)
from builds.queue import LeaseLost, NoSuchBuild, UnknownAbi, WrongArch, WrongRelease
from builds.wheels import InvalidWheel

log = logging.getLogger(__name__)

# Most specific first: UploadTooLarge is an UploadRefused.
STATUS = [
    (LeaseLost, status.HTTP_409_CONFLICT),
    (NoSuchBuild, status.HTTP_404_NOT_FOUND),
    (UploadTooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (UploadTimedOut, status.HTTP_408_REQUEST_TIMEOUT),
    (UploadConflict, status.HTTP_409_CONFLICT),
    (LogTooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (RequestDataTooBig, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (UploadRefused, status.HTTP_400_BAD_REQUEST),
    (LogRefused, status.HTTP_400_BAD_REQUEST),
    (InvalidWheel, status.HTTP_400_BAD_REQUEST),
    (FinishRefused, status.HTTP_400_BAD_REQUEST),
    (UnknownAbi, status.HTTP_400_BAD_REQUEST),
    (WrongRelease, status.HTTP_400_BAD_REQUEST),
    (WrongArch, status.HTTP_400_BAD_REQUEST),
    (BadPackageList, status.HTTP_400_BAD_REQUEST),
    (SuspiciousOperation, status.HTTP_400_BAD_REQUEST),
]
MESSAGES = {
    RequestDataTooBig: "the body is too large for the farm to read",
    SuspiciousOperation: "the request was refused as malformed",
}


class TooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the body is too large"


class TooMany(Throttled):
    def __init__(self, message, wait):
        super().__init__(wait=wait)
        self.detail = message  # one sentence, without DRF's "Expected available in ..."


def handle_exception(exc, context):
    if isinstance(exc, TooManyWaiting):
        exc = TooMany(str(exc), exc.retry_after)  # 429 with Retry-After
    for cls, code in STATUS:
        if isinstance(exc, cls):
            message = next((m for c, m in MESSAGES.items() if isinstance(exc, c)), str(exc))
            exc = APIException(message)
            exc.status_code = code
            break
    if isinstance(exc, ValidationError):
        exc = APIException(one_sentence(exc.detail))
        exc.status_code = status.HTTP_400_BAD_REQUEST
    return exception_handler(exc, context)


def one_sentence(detail, path=""):
    """The first message of a (nested) DRF validation error, naming its field."""
    if isinstance(detail, dict):
        items = [(k, v) for k, v in detail.items() if v]
        if items:
            key, value = items[0]
            if isinstance(key, int):  # an item of a list, e.g. files[0]
                return one_sentence(value, f"{path}[{key}]")
            field = "" if key == "non_field_errors" else str(key)
            return one_sentence(value, ".".join(p for p in (path, field) if p))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                if value:
                    return one_sentence(value, f"{path}[{index}]")
            else:
                return one_sentence(value, path)
    else:
        text = str(detail).rstrip(".")
        return f"{path}: {text}" if path else text
    return f"{path}: invalid" if path else "invalid input"


def json_error(status_code, detail):
    return JsonResponse({"detail": detail}, status=status_code)


@csrf_exempt  # a POST to a wrong path is a 404 too, not a CSRF refusal
def not_found(request, *args, **kwargs):
    """Any /api/ path that names no endpoint (a build id that is not a number, too)."""
    return json_error(404, f"no API endpoint at {request.path}")


# Django's handlers for what goes wrong outside a view (piwheels_site.urls): an /api/
# path is answered in JSON, a page as Django's default does.

def bad_request(request, exception, **kwargs):
    if request.path.startswith("/api/"):
        status_code = 413 if isinstance(exception, RequestDataTooBig) else 400
        message = MESSAGES[RequestDataTooBig if status_code == 413 else SuspiciousOperation]
        return json_error(status_code, message)
    return defaults.bad_request(request, exception, **kwargs)


def server_error(request, **kwargs):
    if request.path.startswith("/api/"):
        return json_error(500, "the farm failed to answer; try again later")
    return defaults.server_error(request, **kwargs)

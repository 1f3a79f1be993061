"""Domain exceptions of builds.queue / builds.publish / builds.wheels as HTTP answers,
in DRF's usual {"detail": "..."} shape."""
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler

from builds.depwait import BadPackageList
from builds.publish import (
    FinishRefused,
    UploadConflict,
    UploadRefused,
    UploadTimedOut,
    UploadTooLarge,
)
from builds.queue import LeaseLost, NoSuchBuild, UnknownAbi, WrongRelease
from builds.wheels import InvalidWheel

# Most specific first: UploadTooLarge is an UploadRefused.
STATUS = [
    (LeaseLost, status.HTTP_409_CONFLICT),
    (NoSuchBuild, status.HTTP_404_NOT_FOUND),
    (UploadTooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (UploadTimedOut, status.HTTP_408_REQUEST_TIMEOUT),
    (UploadConflict, status.HTTP_409_CONFLICT),
    (UploadRefused, status.HTTP_400_BAD_REQUEST),
    (InvalidWheel, status.HTTP_400_BAD_REQUEST),
    (FinishRefused, status.HTTP_400_BAD_REQUEST),
    (UnknownAbi, status.HTTP_400_BAD_REQUEST),
    (WrongRelease, status.HTTP_400_BAD_REQUEST),
    (BadPackageList, status.HTTP_400_BAD_REQUEST),
]


def handle_exception(exc, context):
    for cls, code in STATUS:
        if isinstance(exc, cls):
            exc = APIException(str(exc))
            exc.status_code = code
            break
    return exception_handler(exc, context)

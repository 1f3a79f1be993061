from rest_framework.permissions import BasePermission

from builds.models import Builder


class IsEnabledBuilder(BasePermission):
    """The request comes from a Builder that an admin has not disabled."""

    message = "This builder is disabled; ask the farm's admins to enable it."

    def has_permission(self, request, view):
        if not isinstance(request.auth, Builder):
            return False
        return request.auth.enabled

"""Builders authenticate with `Authorization: Token <token>`; the farm keeps only the
token's sha256 (builds.models.hash_token), so a database leak gives away no tokens."""
from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from builds.models import Builder, hash_token


class BuilderTokenAuthentication(TokenAuthentication):
    """Finds the Builder by token hash: request.user is anonymous, request.auth is the
    Builder. A wrong token is 401 (DRF uses authenticate_header for that); a disabled
    builder is refused by permissions.IsEnabledBuilder with 403."""

    keyword = "Token"

    def authenticate_credentials(self, key):
        builder = Builder.objects.filter(token_hash=hash_token(key)).first()
        if builder is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return AnonymousUser(), builder

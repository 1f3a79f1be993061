import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "piwheels_site.settings")
django_application = get_wsgi_application()

# pip's hot path, GET /simple/<name>/, is answered before Django's request handling.
from index.views import SimpleIndexApp  # noqa: E402 (needs Django set up)
from lib.wsgi import RefuseNul  # noqa: E402

# A NUL in a URL is refused before anything looks it up (the fast path included).
application = RefuseNul(SimpleIndexApp(django_application))

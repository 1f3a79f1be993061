"""Helpers shared by the queue tests (the fixtures are in tests/conftest.py)."""
import hashlib
from datetime import UTC, datetime

from builds import publish, queue
from tests.factories import make_wheel

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def upload(build, builder, path, now=T0):
    """Upload the wheel at PATH for BUILD through the module, as the API does."""
    data = path.read_bytes()
    publish.receive_file(build.id, builder, path.name, [data], len(data),
                         hashlib.sha256(data).hexdigest(), now)
    return {"filename": path.name, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def build_and_publish(build, builder, tmp_path, now=T0, **wheel):
    """Claim-free path to a succeeded build: BUILD must be held by BUILDER."""
    version = build.version
    path = make_wheel(tmp_path, version.project.name, version.version,
                      tags=wheel.pop("tags", f"{build.abi.tag}-{build.abi.tag}-linux_armv7l"),
                      **wheel)
    decl = upload(build, builder, path, now)
    return publish.finish(build.id, builder, True, 1.0, "ok", files=[decl], now=now)


__all__ = ["T0", "upload", "build_and_publish", "queue"]

"""Small factory functions with explicit defaults: no random data."""
import hashlib
from datetime import timedelta

from django.utils import timezone
from packaging.utils import canonicalize_name

from builds.models import Abi, Build, Builder, BuildLog, File, hash_token
from packages.models import Project, Version


def make_project(name="foo", versions=(), **fields):
    project = Project.objects.create(
        name=name, normalized_name=canonicalize_name(name), **fields
    )
    for version in versions:
        make_version(project, version)
    return project


def make_version(project, version="1.0", **fields):
    fields.setdefault("has_sdist", True)
    fields.setdefault("released", timezone.now())
    return Version.objects.create(project=project, version=version, **fields)


def make_abi(tag="cp311", active=True):
    return Abi.objects.get_or_create(tag=tag, defaults={"active": active})[0]


def make_builder(name="pi1", token=None, abi="cp311", **fields):
    token = token or f"token-{name}"
    builder = Builder.objects.create(
        name=name, token_hash=hash_token(token), abi=make_abi(abi) if abi else None, **fields
    )
    builder.token = token  # the plain token, for tests to authenticate with
    return builder


def make_build(version, abi="cp311", state=Build.State.SUCCEEDED, builder=None, output="", **fields):
    now = timezone.now()
    if state in (Build.State.SUCCEEDED, Build.State.FAILED):
        fields.setdefault("started", now - timedelta(minutes=1))
        fields.setdefault("finished", now)
        fields.setdefault("duration", timedelta(minutes=1))
    build = Build.objects.create(
        version=version, abi=make_abi(abi) if isinstance(abi, str) else abi,
        state=state, builder=builder, **fields
    )
    if output:
        BuildLog.objects.create(build=build, output=output)
    return build


def make_file(build, filename=None, content=b"wheel", **fields):
    version = build.version
    if filename is None:
        name = canonicalize_name(version.project.name).replace("-", "_")
        filename = f"{name}-{version.version}-{build.abi.tag}-{build.abi.tag}-linux_armv7l.whl"
    python_tag, abi_tag, platform_tag = filename[:-4].split("-")[-3:]
    fields.setdefault("size", len(content))
    fields.setdefault("sha256", hashlib.sha256(content).hexdigest())
    return File.objects.create(
        build=build, filename=filename, python_tag=python_tag, abi_tag=abi_tag,
        platform_tag=platform_tag, **fields
    )


def make_wheel(directory, name="foo", version="1.0", tags="cp311-cp311-linux_armv7l",
               requires_python="", members=None, filename=None):
    """Write a small valid wheel into DIRECTORY and return its path. MEMBERS (a dict of
    archive name -> bytes) replaces the default .dist-info files, to make broken ones."""
    import zipfile
    from pathlib import Path

    dist = f"{name.replace('-', '_')}-{version}"
    filename = filename or f"{dist}-{tags}.whl"
    if members is None:
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        if requires_python:
            metadata += f"Requires-Python: {requires_python}\n"
        members = {
            f"{name.replace('-', '_')}/__init__.py": b"",
            f"{dist}.dist-info/METADATA": metadata.encode(),
            f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\n"
                                       b"Root-Is-Purelib: false\n",
            f"{dist}.dist-info/RECORD": b"",
        }
    path = Path(directory) / filename
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path

"""Wheels the farm must refuse, each made here byte by byte (tests.factories.craft_zip),
shared by the tests of wheels.inspect, of the upload API and of import_wheels: the same
check for both paths. Each case is (a function of the project name, version and tag
giving (filename, bytes)), and a fragment of the refusal."""
import functools
import zipfile
import zlib

from tests.factories import craft_zip, wheel_members, with_record, zip_entry

GIB = 1024**3
TAG = "cp311-cp311-linux_armv7l"


@functools.cache
def zeros_deflated(size):
    """Raw deflate of SIZE zero bytes (a multiple of 16 MiB) in about SIZE/1000 bytes,
    made in well under a second: one 16 MiB block closed by a full flush, which refers
    to nothing before it, repeated, then an empty final block."""
    block = 16 * 1024**2
    assert size % block == 0
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = deflater.compress(bytes(block)) + deflater.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    return chunk * (size // block) + final.compress(b"") + final.flush()


def parts(name, version, tag):
    filename, members = wheel_members(name, version, tag)
    dist_info = next(k for k in members if k.endswith("/METADATA")).rsplit("/", 1)[0]
    return filename, members, dist_info


def crafted(members, overrides=None, **zip_args):
    """craft_zip of MEMBERS ({name: bytes}), entry fields from OVERRIDES by name."""
    overrides = overrides or {}
    return craft_zip([zip_entry(k, v, **overrides.get(k, {})) for k, v in members.items()],
                     **zip_args)


def with_member(path, content=b"x = 1\n", **fields):
    """A valid wheel with one more member at PATH, listed in RECORD, FIELDS its entry's."""
    def make(name, version, tag):
        filename, members, dist_info = parts(name, version, tag)
        members = with_record({**members, path: content}, f"{dist_info}/RECORD")
        return filename, crafted(members, {path: fields})
    return make


def changed(change):
    """A valid wheel whose members CHANGE(members, dist_info) alters; RECORD redone after."""
    def make(name, version, tag):
        filename, members, dist_info = parts(name, version, tag)
        members = change(dict(members), dist_info)
        return filename, crafted(with_record(members, f"{dist_info}/RECORD"))
    return make


def entry(member, **fields):
    """A valid wheel whose entry for MEMBER (a suffix: 'METADATA', '__init__.py') has
    FIELDS (see zip_entry), or whose archive has zip arguments when MEMBER is None."""
    def make(name, version, tag):
        filename, members, _ = parts(name, version, tag)
        if member is None:
            return filename, crafted(members, **fields)
        target = next(k for k in members if k.endswith(member))
        return filename, crafted(members, {target: fields})
    return make


def raw_record(rewrite):
    """A valid wheel whose RECORD text is REWRITE(text, dist_info), not recomputed."""
    def make(name, version, tag):
        filename, members, dist_info = parts(name, version, tag)
        record = f"{dist_info}/RECORD"
        members[record] = rewrite(members[record].decode(), dist_info).encode()
        return filename, crafted(members)
    return make


def duplicated(name, version, tag):
    filename, members, _ = parts(name, version, tag)
    entries = [zip_entry(k, v) for k, v in members.items()]
    first = next(e for e in entries if e["name"].endswith("__init__.py"))
    return filename, craft_zip([*entries, zip_entry(first["name"], b"import os\n")])


def hidden(name, version, tag):
    """A local entry that the central directory does not list: a streaming reader
    would find a file that pip does not see."""
    filename, members, _ = parts(name, version, tag)
    entries = [zip_entry(k, v) for k, v in members.items()]
    entries.insert(1, zip_entry("evil.py", b"import os\n", hidden=True))
    return filename, craft_zip(entries)


def stream_written(name, version, tag):
    """Written by zipfile to a stream it cannot seek back in: data descriptors."""
    filename, members, _ = parts(name, version, tag)

    class Unseekable:
        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            self.data += b
            return len(b)

        def flush(self):
            pass

    out = Unseekable()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return filename, bytes(out.data)


def named(filename_of):
    """A valid wheel under the filename FILENAME_OF(name, version, tag)."""
    def make(name, version, tag):
        filename, members, _ = parts(name, version, tag)
        return filename_of(filename), crafted(members)
    return make


def bomb(honest):
    """A 1 GiB run of zeros (1 MB deflated) as a member; declared as such (HONEST), or
    declared as 100 bytes, so that only inflating it shows what it is."""
    def make(name, version, tag):
        filename, members, dist_info = parts(name, version, tag)
        path = f"{name.lower()}/zeros.bin"
        members = with_record({**members, path: b"\0" * 100}, f"{dist_info}/RECORD")
        fields = {"raw": zeros_deflated(GIB)}
        if honest:
            fields.update(size=GIB, crc=0)
        return filename, crafted(members, {path: fields})
    return make


def lying_wheel_file(name, version, tag):
    """The issue's 1.9 MB upload whose WHEEL inflates to 1.9 GB, here 1 GiB: WHEEL
    declares its true small size and CRC, its data inflates on and on."""
    filename, members, dist_info = parts(name, version, tag)
    wheel = members[f"{dist_info}/WHEEL"]
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflater.compress(wheel) + deflater.flush(zlib.Z_FULL_FLUSH)  # not final
    return filename, crafted(members, {f"{dist_info}/WHEEL": {
        "raw": head + zeros_deflated(GIB)}})


def record_size_wrong(name, version, tag):
    """RECORD says 11 bytes for a 10-byte member."""
    filename, members, dist_info = parts(name, version, tag)
    members = with_record({**members, "foo/data.txt": b"0123456789"}, f"{dist_info}/RECORD")
    record = f"{dist_info}/RECORD"
    members[record] = members[record].replace(b",10\n", b",11\n")
    return filename, crafted(members)


CASES = {
    # zip framing: one reading only
    "duplicate-member": (duplicated, "twice"),
    "hidden-local-entry": (hidden, "there is data before the entry"),
    "data-before": (entry(None, prefix=b"MZ" + bytes(62)), "there is data before the entry"),
    "data-between": (entry(None, between=b"junk" * 8), "there is data before the entry"),
    "data-after": (entry(None, suffix=b"PK\x03\x04 trailing"), "does not end with a zip end"),
    "archive-comment": (entry(None, comment=b"hello"), "does not end with a zip end record"),
    "entry-comment": (entry("METADATA", comment=b"hi"), "has a comment"),
    "local-name-differs": (entry("__init__.py", local={"name": b"x/__init__.py"}), "names"),
    "local-size-differs": (entry("METADATA", local={"size": 7}), "disagrees with the central"),
    "local-crc-differs": (entry("METADATA", local={"crc": 1}), "disagrees with the central"),
    "local-method-differs": (entry("WHEEL", local={"method": 0}), "disagrees with the central"),
    "data-descriptor": (stream_written, "has a data descriptor"),
    "encrypted": (entry("__init__.py", flags=1, local={"flags": 1}), "is encrypted"),
    "bzip2": (entry("__init__.py", method=12, raw=b"BZh9"), "compression method 12"),
    "unicode-path-extra": (entry("__init__.py", extra=b"\x75\x70\x01\x00\x01"),
                           "a second, Unicode name"),
    "cp437-name": (with_member("foo/caf\u00e9.py", flags=0, local={"flags": 0}),
                   "is not UTF-8 flagged"),
    "control-character": (with_member("foo/a\x01.py"), "has a control character"),
    "wrong-crc": (entry("__init__.py", crc=1234, local={"crc": 1234}), "fails its CRC-32"),
    "short-deflate": (entry("__init__.py", raw=zlib.compress(b"VERSION", 9, -15)),
                      "inflates to 7 bytes, not the declared"),
    # member paths
    "dot-dot": (with_member("../../../../tmp/x"), "leaves the wheel"),
    "dot-dot-inside": (with_member("foo/../../x.py"), "leaves the wheel"),
    "absolute": (with_member("/tmp/x"), "an absolute path"),
    "backslash": (with_member("foo\\..\\..\\x.py"), "a backslash"),
    "drive-letter": (with_member("C:/Windows/x.py"), "a drive letter"),
    "empty-component": (with_member("foo//x.py"), "leaves the wheel or is not plain"),
    "symlink": (with_member("foo/passwd", b"/etc/passwd", mode=0o120777),
                "a symbolic link"),
    "fifo": (with_member("foo/pipe", b"", mode=0o010644), "not a regular file"),
    "device": (with_member("foo/tty", b"", mode=0o020644), "not a regular file"),
    "directory-with-data": (with_member("foo/sub/", b"data", mode=0o040755),
                            "a directory entry with data"),
    # sizes
    "zip-bomb": (bomb(honest=True), "a ratio over 50"),
    "lying-zip-bomb": (bomb(honest=False), "inflates past its declared 100 bytes"),
    "lying-wheel-file": (lying_wheel_file, "inflates past its declared"),
    # RECORD
    "unlisted-member": (raw_record(lambda t, d: "\n".join(
        line for line in t.splitlines() if "__init__" not in line) + "\n"),
        "RECORD does not list"),
    "record-hash-wrong": (raw_record(lambda t, d: t.replace("sha256=", "sha256=AAAA", 1)),
                          "does not match its hash in RECORD"),
    "record-size-wrong": (record_size_wrong, "RECORD gives foo/data.txt 11 bytes"),
    "record-lists-a-missing-file": (raw_record(lambda t, d: t + "foo/gone.py,sha256=x,1\n"),
                                    "which is not in it"),
    "record-md5": (raw_record(lambda t, d: t.replace("sha256=", "md5=", 1)),
                   "no sha256 (or better) hash"),
    "record-twice": (raw_record(lambda t, d: t + t.splitlines()[0] + "\n"), "twice"),
    # WHEEL
    "wheel-version-2": (changed(lambda m, d: {**m, f"{d}/WHEEL": m[f"{d}/WHEEL"].replace(
        b"Wheel-Version: 1.0", b"Wheel-Version: 2.0")}), "not 1.x"),
    "no-root-is-purelib": (changed(lambda m, d: {**m, f"{d}/WHEEL": b"Wheel-Version: 1.0\n"
                                                 b"Tag: " + TAG.encode() + b"\n"}),
                           "Root-Is-Purelib"),
    "wrong-tags": (changed(lambda m, d: {**m, f"{d}/WHEEL": m[f"{d}/WHEEL"].replace(
        b"Tag: ", b"Tag: py3-none-any\nTag: ")}), "WHEEL tags"),
    "no-tags": (changed(lambda m, d: {**m, f"{d}/WHEEL": b"Wheel-Version: 1.0\n"
                                      b"Root-Is-Purelib: false\n"}), "WHEEL tags (none)"),
    # issue 20: a build number the filename does not carry
    "build-line-without-build-tag": (changed(lambda m, d: {**m, f"{d}/WHEEL": m[f"{d}/WHEEL"]
                                                           + b"Build: 7\n"}),
                                     "WHEEL build '7'"),
    # METADATA
    "metadata-unknown-field": (changed(lambda m, d: {**m, f"{d}/METADATA": m[f"{d}/METADATA"]
                                                     + b"Frobnicate: yes\n"}),
                               "not valid core metadata"),
    "metadata-no-version": (changed(lambda m, d: {**m, f"{d}/METADATA": b"Metadata-Version: "
                                                  b"2.1\nName: foo\n"}),
                            "not valid core metadata"),
    "metadata-other-project": (changed(lambda m, d: {**m, f"{d}/METADATA": m[f"{d}/METADATA"]
                                                     .replace(b"Name: ", b"Name: x")}),
                               "has METADATA for 'x"),
    "metadata-other-version": (changed(lambda m, d: {**m, f"{d}/METADATA": m[f"{d}/METADATA"]
                                                     .replace(b"Version: 1.0", b"Version: 2")}),
                               "has METADATA for version '2'"),
    # filenames that packaging would not write
    "upper-case-name": (named(lambda f: f[0].upper() + f[1:]), "as packaging writes it"),
    "whl-whl": (named(lambda f: f + ".whl"), "as packaging writes it"),
    "upper-case-tag": (named(lambda f: f.replace("cp311-cp311", "CP311-cp311")),
                       "as packaging writes it"),
    "unnormalised-version": (named(lambda f: f.replace("-1.0-", "-1.00-")),
                             "as packaging writes it"),
    "space": (named(lambda f: f.replace("-1.0-", " -1.0-")), "is not a valid wheel filename"),
    "long-name": (named(lambda f: "a" * 215 + f), "over the limit of 240"),
}

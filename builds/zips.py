"""A zip archive that every reader reads the same way, or a ValueError saying why not.

pip and most tools read a zip through its central directory; others stream its local
headers from the start. When the two disagree (an entry listed twice, a local header
naming other bytes, data before, between or after the entries), an archive can show a
checker one file and an installer another. Since 2025 PyPI refuses such archives
(APPNOTE.TXT framing, warehouse/utils/zipfiles.py); so does the farm, with its own
reader, which also inflates members itself so that it can stop at a bound:

- the archive is local headers + data, back to back from byte 0, then the central
  directory, then (ZIP64 only) its end record and locator, then the end record, which
  ends the file: no archive comment, no entry comments, nothing in between;
- each central-directory entry and its local header agree on name, flags, compression
  method, CRC-32 and sizes; no name twice; no data descriptors (their sizes are read
  differently by different tools), no encryption, only stored and deflated members
  (their inflation can be bounded chunk by chunk), no Info-ZIP Unicode-path extras (a
  second name), no duplicate extras;
- names are UTF-8 (ASCII when the UTF-8 flag is off), without control characters.
"""
import struct
import zlib
from dataclasses import dataclass

LOCAL = b"PK\x03\x04"
CENTRAL = b"PK\x01\x02"
END = b"PK\x05\x06"
END64 = b"PK\x06\x06"
LOCATOR64 = b"PK\x06\x07"
STORED, DEFLATED = 0, 8
# Central directory read at most, whole, into memory (100,000 entries of 600 bytes).
MAX_DIRECTORY = 64 * 1024**2
CHUNK = 64 * 1024
FLAG_ENCRYPTED, FLAG_DESCRIPTOR, FLAG_UTF8 = 0x1, 0x8, 0x800
FLAGS_REFUSED = 0x1 | 0x8 | 0x40 | 0x2000  # encrypted, descriptor, strong enc., masked
EXTRA_ZIP64, EXTRA_UNICODE_PATH = 0x0001, 0x7075
SATURATED = 0xFFFFFFFF


class BadZip(ValueError):
    """The archive is malformed or ambiguous; the message says how, in a few words."""


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    method: int
    crc: int
    compressed: int
    size: int
    offset: int  # of its local header
    data_offset: int
    external_attr: int
    create_system: int

    @property
    def mode(self):
        """Unix st_mode bits, or 0 when the archive was not made on Unix."""
        return self.external_attr >> 16 if self.create_system == 3 else 0

    @property
    def is_dir(self):
        return self.name.endswith("/")


def read_members(f, file_size, max_members):
    """The members of the zip open in F (FILE_SIZE bytes), checked as the module
    docstring says, in archive order. Reads headers only; inflates nothing."""
    entries, cd_offset, cd_size, cd_end = _end_records(f, file_size, max_members)
    if cd_size > MAX_DIRECTORY:
        raise BadZip(f"its central directory is over {MAX_DIRECTORY} bytes")
    if cd_offset + cd_size != cd_end:
        raise BadZip("there is data between its central directory and its end record")
    f.seek(cd_offset)
    directory = f.read(cd_size)
    if len(directory) != cd_size:
        raise BadZip("its central directory is cut short")
    central, names, pos = [], set(), 0
    for _ in range(entries):
        entry, pos = _central_entry(directory, pos)
        if entry["name"] in names:
            raise BadZip(f"it lists {entry['name']!r} twice")
        names.add(entry["name"])
        central.append(entry)
    if pos != cd_size:
        raise BadZip("its central directory holds more than its end record counts")
    members, expected = [], 0
    for entry in sorted(central, key=lambda e: e["offset"]):
        if entry["offset"] != expected:
            raise BadZip(f"there is data before the entry {entry['name']!r}")
        data_offset = _local_header(f, entry)
        members.append(Member(
            name=entry["name"], method=entry["method"], crc=entry["crc"],
            compressed=entry["compressed"], size=entry["size"], offset=entry["offset"],
            data_offset=data_offset, external_attr=entry["external_attr"],
            create_system=entry["create_system"],
        ))
        expected = data_offset + entry["compressed"]
    if expected != cd_offset:
        raise BadZip("there is data between its last entry and its central directory")
    return members


def _end_records(f, file_size, max_members):
    """(entries, directory offset, directory size, where the directory must end)."""
    if file_size < 22:
        raise BadZip("it is too short to be a zip file")
    f.seek(file_size - 22)
    end = f.read(22)
    if end[:4] != END:
        raise BadZip("it does not end with a zip end record (a comment or data after it?)")
    disk, cd_disk, on_disk, entries, cd_size, cd_offset, comment = struct.unpack(
        "<4xHHHHIIH", end)
    if comment:
        raise BadZip("its end record has a comment")
    if disk or cd_disk or on_disk != entries:
        raise BadZip("it spans several disks")
    cd_end = file_size - 22
    zip64 = None
    if file_size >= 22 + 20 + 56:
        f.seek(file_size - 42)
        locator = f.read(20)
        if locator[:4] == LOCATOR64:
            zip64 = _end64(f, file_size, locator)
    if zip64 is not None:
        # Each field of the plain end record is either saturated or equal to the ZIP64 one.
        for plain, wide, full in ((entries, zip64[0], 0xFFFF), (cd_size, zip64[1], SATURATED),
                                  (cd_offset, zip64[2], SATURATED)):
            if plain not in (full, wide):
                raise BadZip("its end records disagree")
        entries, cd_size, cd_offset = zip64
        cd_end = file_size - 22 - 20 - 56
    elif SATURATED in (cd_size, cd_offset) or entries == 0xFFFF:
        raise BadZip("its end record points at a ZIP64 record that is not there")
    if entries > max_members:
        raise BadZip(f"it has {entries} members, over the limit of {max_members}")
    return entries, cd_offset, cd_size, cd_end


def _end64(f, file_size, locator):
    """(entries, directory size, directory offset) from the ZIP64 end record, which must
    sit right before its locator and carry no extensible data."""
    disk, offset, disks = struct.unpack("<4xIQI", locator)
    where = file_size - 22 - 20 - 56
    if disk != 0 or disks != 1 or offset != where:
        raise BadZip("its ZIP64 locator points elsewhere")
    f.seek(where)
    record = f.read(56)
    if record[:4] != END64:
        raise BadZip("its ZIP64 end record is missing")
    size, disk, cd_disk, on_disk, entries, cd_size, cd_offset = struct.unpack(
        "<4xQ4xIIQQQQ", record)
    if size != 44:
        raise BadZip("its ZIP64 end record has extensible data")
    if disk or cd_disk or on_disk != entries:
        raise BadZip("it spans several disks")
    return entries, cd_size, cd_offset


def _central_entry(directory, pos):
    header = directory[pos:pos + 46]
    if len(header) < 46 or header[:4] != CENTRAL:
        raise BadZip("its central directory is malformed")
    (made_by, _needed, flags, method, _time, _date, crc, compressed, size, name_len,
     extra_len, comment_len, disk, _internal, external_attr, offset) = struct.unpack(
        "<4xHHHHHHIIIHHHHHII", header)
    pos += 46
    raw_name = directory[pos:pos + name_len]
    extra = directory[pos + name_len:pos + name_len + extra_len]
    if len(raw_name) != name_len or len(extra) != extra_len:
        raise BadZip("its central directory is malformed")
    pos += name_len + extra_len + comment_len
    name = _name(raw_name, flags)
    if comment_len:
        raise BadZip(f"the entry {name!r} has a comment")
    _check_flags(name, flags, method)
    fields = _extras(name, extra)
    wide = list(fields.get(EXTRA_ZIP64, ()))
    # ZIP64 values come in this order, each only when its 32-bit field is saturated.
    values = {}
    for key, value, full in (("size", size, SATURATED), ("compressed", compressed, SATURATED),
                             ("offset", offset, SATURATED), ("disk", disk, 0xFFFF)):
        if value == full and EXTRA_ZIP64 in fields:
            if not wide:
                raise BadZip(f"the entry {name!r} has a short ZIP64 extra field")
            value = wide.pop(0)
        values[key] = value
    if wide:
        raise BadZip(f"the entry {name!r} has a ZIP64 extra field it does not need")
    if values["disk"] != 0:
        raise BadZip("it spans several disks")
    return {
        "name": name, "raw_name": raw_name, "flags": flags, "method": method, "crc": crc,
        "compressed": values["compressed"], "size": values["size"],
        "offset": values["offset"], "external_attr": external_attr,
        "create_system": made_by >> 8,
    }, pos


def _local_header(f, entry):
    """Check the local header of ENTRY against it; returns where its data starts."""
    f.seek(entry["offset"])
    header = f.read(30)
    name = entry["name"]
    if len(header) < 30 or header[:4] != LOCAL:
        raise BadZip(f"the entry {name!r} has no local header")
    _needed, flags, method, _time, _date, crc, compressed, size, name_len, extra_len = (
        struct.unpack("<4xHHHHHIIIHH", header))
    raw_name = f.read(name_len)
    extra = f.read(extra_len)
    if len(raw_name) != name_len or len(extra) != extra_len:
        raise BadZip(f"the local header of {name!r} is cut short")
    if raw_name != entry["raw_name"]:
        raise BadZip(f"the local header of {name!r} names {raw_name!r}")
    fields = _extras(name, extra)
    if EXTRA_ZIP64 in fields:
        wide = fields[EXTRA_ZIP64]
        if len(wide) < 2 or size != SATURATED or compressed != SATURATED:
            raise BadZip(f"the local header of {name!r} has a malformed ZIP64 extra field")
        size, compressed = wide[0], wide[1]
    if (flags, method, crc, compressed, size) != (
            entry["flags"], entry["method"], entry["crc"], entry["compressed"], entry["size"]):
        raise BadZip(f"the local header of {name!r} disagrees with the central directory")
    return entry["offset"] + 30 + name_len + extra_len


def _name(raw, flags):
    try:
        name = raw.decode("utf-8" if flags & FLAG_UTF8 else "ascii")
    except UnicodeDecodeError:
        # Without the UTF-8 flag tools guess (cp437, the locale...): two readings.
        raise BadZip(f"the entry name {raw!r} is not UTF-8 flagged as such") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadZip(f"the entry name {name!r} has a control character")
    return name


def _check_flags(name, flags, method):
    if flags & FLAGS_REFUSED:
        what = "is encrypted" if flags & FLAG_ENCRYPTED else (
            "has a data descriptor" if flags & FLAG_DESCRIPTOR else "is masked or encrypted")
        raise BadZip(f"the entry {name!r} {what}")
    if method not in (STORED, DEFLATED):
        raise BadZip(f"the entry {name!r} uses compression method {method}, "
                     "not stored or deflated")


def _extras(name, extra):
    """{field id: data}, ZIP64 data as a list of 8-byte values; refuses duplicates and
    Info-ZIP Unicode paths."""
    fields, pos = {}, 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise BadZip(f"the entry {name!r} has a malformed extra field")
        field, length = struct.unpack_from("<HH", extra, pos)
        data = extra[pos + 4:pos + 4 + length]
        if len(data) != length:
            raise BadZip(f"the entry {name!r} has a malformed extra field")
        if field in fields:
            raise BadZip(f"the entry {name!r} has the extra field {field:#06x} twice")
        if field == EXTRA_UNICODE_PATH:
            raise BadZip(f"the entry {name!r} has a second, Unicode name")
        if field == EXTRA_ZIP64:
            if length % 8 not in (0, 4):
                raise BadZip(f"the entry {name!r} has a malformed ZIP64 extra field")
            data = list(struct.unpack_from(f"<{length // 8}Q", data))
        fields[field] = data
        pos += 4 + length
    return fields


def inflate(f, member, limit, what):
    """Yield MEMBER's bytes in chunks of at most CHUNK, reading F from its data; never
    more than LIMIT bytes in all: past it, or past the member's declared size, BadZip
    is raised at once, WHAT naming the limit. At the end the size and CRC-32 must be
    the declared ones and the deflate stream must end exactly with the member's data."""
    f.seek(member.data_offset)
    left, produced, crc = member.compressed, 0, 0
    inflater = zlib.decompressobj(-15) if member.method == DEFLATED else None
    pending = b""
    while True:
        if not pending and left:
            pending = f.read(min(CHUNK, left))
            if not pending:
                raise BadZip(f"the data of {member.name!r} is cut short")
            left -= len(pending)
        if inflater is None:
            if not pending:
                break
            chunk, pending = pending, b""
        else:
            if inflater.eof:
                if pending or left or inflater.unused_data:
                    raise BadZip(f"{member.name!r} has data after its deflate stream")
                break
            try:
                chunk = inflater.decompress(pending, CHUNK)
            except zlib.error as exc:
                raise BadZip(f"{member.name!r} does not inflate: {exc}") from None
            pending = inflater.unconsumed_tail
            if not chunk and not pending and not left and not inflater.eof:
                raise BadZip(f"the deflate stream of {member.name!r} is cut short")
        produced += len(chunk)
        if produced > member.size:
            raise BadZip(f"{member.name!r} inflates past its declared {member.size} bytes")
        if produced > limit:
            raise BadZip(f"{member.name!r} is over {what} of {limit} bytes")
        crc = zlib.crc32(chunk, crc)
        if chunk:
            yield chunk
    if produced != member.size:
        raise BadZip(f"{member.name!r} inflates to {produced} bytes, not the declared "
                     f"{member.size}")
    if crc != member.crc:
        raise BadZip(f"{member.name!r} fails its CRC-32 check")

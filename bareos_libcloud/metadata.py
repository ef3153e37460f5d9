"""An object's metadata beyond its bytes, and the names it has in Bareos (docs/metadata.md).

At backup, a GET's headers give the metadata (``from_headers``: no request of its own), the job
hands it to Bareos as extended attributes of the object's file (``get_xattr``), and Bareos keeps
them in the file's xattr stream, so they travel with the object.  A restore to disk writes them
as the restored file's ``user.*`` attributes; a restore into a bucket sends them back as the new
object's headers (``upload_arguments``).  Standard library only: both sides use it.

Names (the xattr name is ``user.libcloud.`` + the name below)::

    content-type, content-encoding, content-disposition, content-language, cache-control,
    expires                  the HTTP headers of that name
    storage-class            S3's x-amz-storage-class (GCS: x-goog-storage-class)
    meta.<name>              user metadata: x-amz-meta-<name> (GCS x-goog-meta-, Azure x-ms-meta-,
                             Swift x-object-meta-), so it goes to any provider's equivalent
    tags                     S3 object tags, URL-encoded (``k=v&k2=v2``, as x-amz-tagging takes them)

Values are the header's bytes as the store sent them (HTTP headers are read as latin-1, so
``value.encode("latin-1")`` gives them back exactly, UTF-8 included).
"""

from urllib.parse import parse_qsl, quote, urlencode

XATTR_PREFIX = b"user.libcloud."
HEADERS = ("content-type", "content-encoding", "content-disposition", "content-language", "cache-control", "expires")
USER_PREFIXES = ("x-amz-meta-", "x-goog-meta-", "x-ms-meta-", "x-object-meta-")
STORAGE_CLASS_HEADERS = ("x-amz-storage-class", "x-goog-storage-class")
TAG_COUNT = "x-amz-tagging-count"
USER = "meta."
TAGS = "tags"
STORAGE_CLASS = "storage-class"


class BadMetadata(ValueError):
    """An xattr of ours whose name or value cannot go back to a store."""


def from_headers(headers):
    """The metadata in a GET's headers ({lowercase name: str}): sorted (name, value) pairs."""
    pairs = []
    for name, value in headers.items():
        if name in HEADERS:
            pairs.append((name, value))
        elif name.startswith(USER_PREFIXES):
            pairs.append((USER + name.split("-meta-", 1)[1], value))
        elif name in STORAGE_CLASS_HEADERS:
            pairs.append((STORAGE_CLASS, value))
    return tuple(sorted(pairs))


#: libcloud's ``extra`` names of a generic listing (Azure Blobs, Swift) for the headers above.
LISTING_FIELDS = {"content_type": "content-type", "content_encoding": "content-encoding",
                  "content_language": "content-language", "cache_control": "cache-control",
                  "content_disposition": "content-disposition"}


def from_listing(extra, meta_data):
    """The metadata a generic listing states (libcloud's ``extra`` and ``meta_data``), or None."""
    pairs = [(name, extra[field]) for field, name in LISTING_FIELDS.items() if extra.get(field)]
    pairs.extend((USER + name.lower(), value) for name, value in (meta_data or {}).items() if value is not None)
    return tuple(sorted(pairs)) or None


def tag_count(headers):
    """How many tags the GET says the object has (S3's x-amz-tagging-count), 0 if it says none."""
    try:
        return int(headers.get(TAG_COUNT) or 0)
    except ValueError:
        return 0


def with_tags(pairs, tags):
    """``pairs`` with the object's ``tags`` ([(key, value)]) added."""
    if not tags:
        return pairs
    return tuple(sorted(pairs + ((TAGS, tags_header(tags)),)))


def tags_header(tags):
    """[(key, value)] as S3's x-amz-tagging header takes them (a blank as %20: radosgw reads no '+')."""
    return urlencode(tags, quote_via=quote)


#: bareos-fd refuses an xattr with an empty value (bareosfd.cc PyXattrPacketToNative); a header
#: value never holds a NUL byte, so one NUL stands for the empty value.
EMPTY = b"\0"


def to_xattrs(pairs):
    """[(xattr name, value)] as bytes, for get_xattr (an empty value as EMPTY)."""
    return [(XATTR_PREFIX + name.encode("latin-1"), value.encode("latin-1") or EMPTY) for name, value in pairs]


def from_xattr(name, value):
    """One (name, value) pair of ours from a set_xattr packet, or None for another's attribute."""
    name = bytes(name).rstrip(b"\0")
    if not name.startswith(XATTR_PREFIX):
        return None
    value = bytes(value or b"")
    return name[len(XATTR_PREFIX):].decode("latin-1"), "" if value == EMPTY else value.decode("latin-1")


def disk_value(value):
    """The value a restore to disk writes for a set_xattr value (EMPTY is the empty value)."""
    value = bytes(value or b"")
    return b"" if value == EMPTY else value


def tags_of(pairs):
    """The (key, value) tags in ``pairs``, in their order."""
    for name, value in pairs:
        if name == TAGS:
            return parse_qsl(value, keep_blank_values=True)
    return []


def upload_arguments(pairs):
    """libcloud's ``extra`` and ``headers`` for an upload that gives an object ``pairs`` back.

    Content-Type goes as ``extra["content_type"]`` and user metadata as ``extra["meta_data"]``,
    which every driver maps to its own header family; the other standard headers go as they
    are.  The storage class and tags are not in these (``storage_class_of``, ``tags_of``)."""
    extra, headers, meta = {}, {}, {}
    for name, value in pairs:
        if name == "content-type":
            extra["content_type"] = value
        elif name.startswith(USER):
            meta[name[len(USER):]] = value
        elif name in HEADERS:
            headers[name.title()] = value
    if meta:
        extra["meta_data"] = meta
    return extra, headers


def storage_class_of(pairs):
    for name, value in pairs:
        if name == STORAGE_CLASS:
            return value
    return None

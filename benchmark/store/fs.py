"""Where the store lives: a local folder or any pyarrow filesystem URI (file://, s3://, gs://, hdfs://).

Atomic publication differs by kind of filesystem:
- local (and file://): write `<final>.tmp-<pid>-<uuid>` in the same folder, then rename onto the final
  name (os.replace semantics: a reader sees no file or a whole one, never half of one);
- object stores have no atomic rename (a "move" is copy + delete): write the unique temporary key
  first, then copy it onto the final key (a PUT/copy becomes visible whole or not at all), then
  delete the temporary key. A crash leaves at most a temporary key behind, which readers ignore.
Temporary names never end in ".parquet", so listing for "*.parquet" never returns one.

A URI's credentials and endpoint come from the environment, as the filesystem's own SDK reads them (S3: the
standard AWS variables, AWS_ENDPOINT_URL included), or from the URI's query (s3://bucket/prefix?region=...).
`locate` asks the store once whether it answers and the bucket exists, so a typo fails before any work.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from benchmark.errors import UserError

TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class Location:
    fs: pafs.FileSystem
    base: str  # the root inside `fs`, without a trailing slash
    display: str  # what the user gave, for messages

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def join(self, *parts: str) -> str:
        return "/".join([self.base, *parts]) if self.base else "/".join(parts)


def locate(root: str | os.PathLike, filesystem: pafs.FileSystem | None = None) -> Location:
    """A results root -> (filesystem, path). A plain path is local (made absolute now); 'scheme://...' goes
    through pyarrow.fs.FileSystem.from_uri; `filesystem` (tests, callers with credentials) is used as given."""
    text = os.fspath(root)
    if filesystem is not None:
        return Location(filesystem, text.rstrip("/"), text)
    if "://" not in text:
        return Location(pafs.LocalFileSystem(), str(Path(text).expanduser().resolve()), text)
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--results {text!r}: cannot open this filesystem ({first}); allowed: a local path or a "
                        "pyarrow filesystem URI such as file:///shared/results, s3://bucket/prefix, gs://bucket/prefix, "
                        "hdfs://host/path") from None
    loc = Location(fs, path.rstrip("/"), text)
    _check_reachable(loc)
    return loc


# Object stores whose first path component is a bucket that peft-bench never creates (the user's, with its
# permissions and lifecycle rules): a missing one would otherwise fail the first write, after a trial trained.
BUCKET_STORES = ("s3", "gcs")


def _check_reachable(loc: Location) -> None:
    """One metadata request, so an unreachable endpoint, refused credentials or a missing bucket fail in one line
    before anything runs; a missing prefix is fine (the first write creates it)."""
    bucket = loc.base.split("/", 1)[0]
    try:
        info = loc.fs.get_file_info(loc.base)
        if loc.fs.type_name in BUCKET_STORES and info.type == pafs.FileType.NotFound and bucket != loc.base:
            info = loc.fs.get_file_info(bucket)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--results {loc.display!r}: cannot reach the store ({first}); allowed: a reachable store "
                        "and its credentials (S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and "
                        "AWS_ENDPOINT_URL for an S3-compatible server)") from None
    if loc.fs.type_name in BUCKET_STORES and info.type == pafs.FileType.NotFound:
        raise UserError(f"--results {loc.display!r}: bucket {bucket!r} not found at this endpoint; allowed: an "
                        "existing bucket (peft-bench writes under its prefix, it never creates buckets)")


def is_uri(root: str | os.PathLike) -> bool:
    return "://" in os.fspath(root)


def list_parquet(loc: Location, folder: str) -> list[pafs.FileInfo]:
    """The finished *.parquet files directly in `folder` (temporary keys excluded), sorted by path."""
    infos = loc.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return sorted((i for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                   and TMP_MARK not in i.base_name), key=lambda i: i.path)


def list_dirs(loc: Location, folder: str) -> list[str]:
    infos = loc.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def exists(loc: Location, path: str) -> bool:
    return loc.fs.get_file_info(path).type == pafs.FileType.File


# Parquet options for one trial's file (a few rows): dictionaries and column statistics help readers
# of large files skip data, but in a few-row file they only add footer bytes and writing time.
SMALL_FILE_OPTIONS = {"use_dictionary": False, "write_statistics": False}
_made_dirs: set[str] = set()  # local folders this process has created or found (one mkdir per folder)


def write_atomic(loc: Location, table: pa.Table, path: str, metadata: dict[bytes, bytes] | None = None,
                 small: bool = False) -> str:
    """Publish `table` at `path` atomically (see the module docstring); the temporary key is removed on failure.
    small=True: a file of a few rows (one trial), written without dictionaries and statistics."""
    parent = path.rsplit("/", 1)[0]
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    options = SMALL_FILE_OPTIONS if small else {}
    if loc.local:
        return _write_local(table, path, parent, temp_name(path), options)
    loc.fs.create_dir(parent, recursive=True)
    return upload_atomic(loc, path, lambda out: pq.write_table(table, out, **options))


def temp_name(path: str) -> str:
    """A temporary name beside `path`, unique to this process and call; readers skip it (TMP_MARK)."""
    return f"{path}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex}"


def upload_atomic(loc: Location, path: str, write) -> str:
    """Object stores: `write(stream)` to a temporary key, then copy it onto `path` (a copy onto the final key is
    visible whole or not at all) and delete it; the temporary key is removed on failure."""
    tmp = temp_name(path)
    try:
        with loc.fs.open_output_stream(tmp) as out:
            write(out)
        loc.fs.copy_file(tmp, path)
        loc.fs.delete_file(tmp)
    except BaseException:
        try:
            loc.fs.delete_file(tmp)
        except (OSError, pa.ArrowException):
            pass  # never written, or already gone
        raise
    return path


def _write_local(table: pa.Table, path: str, parent: str, tmp: str, options: dict) -> str:
    # Serialise in memory, then one write and one rename(2) (os.replace: atomic on POSIX): a fraction
    # of the cost of pyarrow's filesystem calls for a file of a few kB, which is what a trial writes.
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, **options)
    return _replace_local(buffer.getvalue(), path, parent, tmp)


def write_bytes_atomic(loc: Location, data: bytes, path: str) -> str:
    """`data` at `path`, atomically, as write_atomic does for Parquet: a reader sees the whole file or none."""
    if not loc.local:
        return upload_atomic(loc, path, lambda out: out.write(data))
    return _replace_local(data, path, path.rsplit("/", 1)[0], temp_name(path))


def _replace_local(data, path: str, parent: str, tmp: str) -> str:
    """A temporary file written whole, then renamed over `path`; the temporary is removed on any failure."""
    if parent not in _made_dirs:
        os.makedirs(parent, exist_ok=True)
        _made_dirs.add(parent)
    try:
        for attempt in range(3):
            try:
                handle = open(tmp, "wb")
                break
            except FileNotFoundError:  # the folder was removed since it was made (a lease release empties one)
                if attempt == 2:
                    raise
                os.makedirs(parent, exist_ok=True)
        with handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never written, or already gone
        raise
    return path

"""Tables in and out of jobs: Parquet inputs as `datasets.Dataset`, results to Parquet.

Outputs are written to a temp file in the target's folder and renamed into place,
so a target only ever appears complete. Each file says which build wrote it: the schema
metadata carries `dreammake.rule/fingerprint/version`, and the footer adds `dreammake.data_hash`
and `dreammake.body_hash` (xxh3-128 of every byte before the footer), so a target whose record
was lost can be recognised and verified without rebuilding it (`build_info`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from dreammake import __version__

if TYPE_CHECKING:
    import pyarrow as pa


def read_table(path: str) -> pa.Table:
    """A Parquet file as an Arrow table (memory-mapped read)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, memory_map=True).read()


def iter_batches(path: str, rows: int = 65536) -> Any:
    """Stream a Parquet file as record batches of at most `rows` rows (constant memory)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, memory_map=True).iter_batches(batch_size=rows)


def load_dataset(path: str, content_hash: str | None = None) -> Any:
    """A Parquet target as a `datasets.Dataset` over Arrow memory (no copy into the HF cache).

    Passing the file's content hash as the Dataset fingerprint spares `datasets` from
    hashing the table itself (milliseconds per input)."""
    import datasets
    from datasets.table import InMemoryTable

    datasets.disable_progress_bars()  # dreammake shows its own progress; `map` bars would clutter the log
    return datasets.Dataset(InMemoryTable(read_table(path)), fingerprint=content_hash)


def to_table(value: Any, what: str) -> pa.Table:
    """Rows (list of dicts), a dict of columns, an Arrow table, a pandas frame or a Dataset → Arrow table."""
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    if isinstance(value, dict):
        return pa.table(value)
    if isinstance(value, list):
        if value and not isinstance(value[0], dict):
            raise TypeError(f"{what}: a list result must hold one dict per row, got {type(value[0]).__name__}")
        return pa.Table.from_pylist(value)
    module = type(value).__module__
    if module.startswith("datasets"):
        if getattr(value, "_indices", None) is not None:
            value = value.flatten_indices()
        return value.data.table
    if module.startswith("pandas"):
        return pa.Table.from_pandas(value, preserve_index=False)
    if module.startswith("polars"):
        return value.to_arrow()
    raise TypeError(f"{what}: cannot turn a {type(value).__name__} into a table; return rows (a list of dicts),"
                    " a dict of columns, a pyarrow Table, a pandas DataFrame or a datasets.Dataset")


class _HashingFile:
    """A write-only file object that hashes every byte written through it (the Parquet writer's sink)."""

    def __init__(self, path: str):
        self._file = open(path, "wb")  # noqa: SIM115 - closed by TableWriter.close
        self.hash = xxhash.xxh3_128()
        self.closed = False
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self._size += len(data)
        return self._file.write(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:  # the Parquet writer closes its sink; the file stays open until TableWriter closes it
        self.closed = True


class TableWriter:
    """Streams record batches into a Parquet file with dreammake's metadata, hashing the data as it goes.

    `data_hash` (schema + values, not the file's metadata) is what early cutoff compares.
    """

    def __init__(self, path: str, rule: str, fingerprint: str):
        self.path = path
        self.meta = {b"dreammake.rule": rule.encode(), b"dreammake.fingerprint": fingerprint.encode(),
                     b"dreammake.version": __version__.encode()}
        self.rows = 0
        self._writer: Any = None
        self._sink: _HashingFile | None = None
        self._hash = xxhash.xxh3_128()

    def write(self, table: pa.Table) -> None:
        """Append a table (or batch) to the file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self._writer is None:
            schema = table.schema.with_metadata({**(table.schema.metadata or {}), **self.meta})
            self._sink = _HashingFile(self.path)
            self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd")
            self.schema = schema
            self._hash.update(table.schema.remove_metadata().serialize().to_pybytes())
        table = table.replace_schema_metadata(self.schema.metadata)
        self._writer.write_table(table)
        for batch in table.to_batches():
            self._hash.update(memoryview(batch.serialize()))
        self.rows += table.num_rows

    def close(self, empty_schema: pa.Schema | None = None) -> str:
        """Finish the file; returns the data hash. An empty result still gets a valid file."""
        if self._writer is None:
            import pyarrow as pa

            self.write(pa.table({}) if empty_schema is None else empty_schema.empty_table())
        data_hash = self._hash.hexdigest()
        assert self._sink is not None
        self._writer.add_key_value_metadata({"dreammake.data_hash": data_hash,  # every row group is written now
                                             "dreammake.body_hash": self._sink.hash.hexdigest()})
        self._writer.close()
        self._sink._file.close()
        return data_hash


def write_table(table: pa.Table, path: str, rule: str, fingerprint: str) -> str:
    """Write a whole table as Parquet with dreammake's metadata; returns its data hash."""
    writer = TableWriter(path, rule, fingerprint)
    for i in range(0, max(table.num_rows, 1), 65536):
        writer.write(table.slice(i, 65536))
    return writer.close()


@dataclass(frozen=True)
class BuildInfo:
    """What a Parquet file written by dreammake says about the build that wrote it."""

    rule: str
    fingerprint: str
    data_hash: str
    rows: int


def build_info(path: str, fingerprint: str | None = None) -> BuildInfo | None:
    """The build metadata of a Parquet target, when its bytes are verified intact (the body hash in
    its footer matches); None for files without it, or changed since they were written. With
    `fingerprint`, None unless that is the build's fingerprint (checked on the raw footer first,
    without importing pyarrow: a plan after an edit asks this of every job the edit made stale)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < 12:
                return None
            f.seek(size - 8)
            footer_len, magic = struct.unpack("<I4s", f.read(8))
            body = size - 8 - footer_len
            if magic != b"PAR1" or body < 4:
                return None
            if fingerprint is not None:
                f.seek(body)
                if fingerprint.encode() not in f.read(footer_len):  # key-value metadata is stored raw
                    return None
            import pyarrow.parquet as pq

            meta = pq.read_metadata(f)
            kv = meta.metadata or {}
            fields = [kv.get(k) for k in (b"dreammake.rule", b"dreammake.fingerprint", b"dreammake.data_hash",
                                          b"dreammake.body_hash")]
            if any(v is None for v in fields):
                return None
            f.seek(0)
            digest = xxhash.xxh3_128()
            left = body
            while left:
                chunk = f.read(min(left, 1 << 22))
                if not chunk:
                    return None
                digest.update(chunk)
                left -= len(chunk)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return None
    if digest.hexdigest() != fields[3].decode() or fingerprint not in (None, fields[1].decode()):
        return None
    return BuildInfo(fields[0].decode(), fields[1].decode(), fields[2].decode(), meta.num_rows)

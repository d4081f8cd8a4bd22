"""Tables in and out of jobs: Parquet inputs as `datasets.Dataset`, results to Parquet.

Outputs are written to a temp file in the target's folder and renamed into place,
so a target only ever appears complete.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import xxhash

from dreammake import __version__
from dreammake.filehash import TEMP_MARK

if TYPE_CHECKING:
    import pyarrow as pa


def temp_path(path: str) -> str:
    """A temp path in the same folder as `path` (so the final rename is atomic)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def read_table(path: str) -> pa.Table:
    """A Parquet file as an Arrow table (memory-mapped read)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, memory_map=True).read()


def load_dataset(path: str, content_hash: str | None = None) -> Any:
    """A Parquet target as a `datasets.Dataset` over Arrow memory (no copy into the HF cache).

    Passing the file's content hash as the Dataset fingerprint spares `datasets` from
    hashing the table itself (milliseconds per input)."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    return Dataset(InMemoryTable(read_table(path)), fingerprint=content_hash)


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


def data_hash(table: pa.Table) -> str:
    """Hash of a table's schema and values, independent of the Parquet file's metadata."""
    import pyarrow as pa

    h = xxhash.xxh3_128()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_table(table.replace_schema_metadata(None), max_chunksize=65536)
    h.update(sink.getvalue())
    return h.hexdigest()


def write_parquet(table: pa.Table, path: str, rule: str, fingerprint: str) -> None:
    """Write a table to `path` with dreammake's key-value metadata (rule, fingerprint, version)."""
    import pyarrow.parquet as pq

    meta = dict(table.schema.metadata or {})
    meta.update({b"dreammake.rule": rule.encode(), b"dreammake.fingerprint": fingerprint.encode(),
                 b"dreammake.version": __version__.encode()})
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd")

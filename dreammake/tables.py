"""Tables in and out of jobs: Parquet inputs as `datasets.Dataset`, results to Parquet.

Outputs are written to a temp file in the target's folder and renamed into place,
so a target only ever appears complete.
"""

from __future__ import annotations

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
        self._hash = xxhash.xxh3_128()

    def write(self, table: pa.Table) -> None:
        """Append a table (or batch) to the file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self._writer is None:
            schema = table.schema.with_metadata({**(table.schema.metadata or {}), **self.meta})
            self._writer = pq.ParquetWriter(self.path, schema, compression="zstd")
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
        self._writer.close()
        return self._hash.hexdigest()


def write_table(table: pa.Table, path: str, rule: str, fingerprint: str) -> str:
    """Write a whole table as Parquet with dreammake's metadata; returns its data hash."""
    writer = TableWriter(path, rule, fingerprint)
    for i in range(0, max(table.num_rows, 1), 65536):
        writer.write(table.slice(i, 65536))
    return writer.close()

"""Source rules: tables from local files (`read`), inline Python rows (`rows`) and Hugging Face datasets
(`hf_dataset`), written as Parquet.

    rule("raw", input="data/questions.jsonl", output="targets/raw.parquet", run=rules.read())
    rule("seed", output="targets/seed.parquet", run=rules.rows([{"topic": "tides"}, {"topic": "volcanoes"}]))
    rule("squad", output="targets/squad.parquet", run=rules.hf_dataset("rajpurkar/squad", split="validation"))

A file read by `read` is the rule's input, and a local dataset folder is made an input of an `hf_dataset`
rule, so their contents enter the fingerprint. Hub datasets come from the local Hugging Face cache only:
these rules never touch the network.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dreammake.actions import Action, JobContext
from dreammake.errors import DreamError
from dreammake.hfcache import datasets_cache, hub_cache
from dreammake.paths import normalize
from dreammake.targets import is_table_path

from .data import check_columns, fail, schema_of, write

if TYPE_CHECKING:
    import pyarrow as pa

    from dreammake.dsl import Rule

BATCH_ROWS = 65_536
TEXT_CHUNK = 8 << 20  # characters of a text file read at a time
CSV_BLOCK = 8 << 20  # bytes per CSV/JSON block: types are inferred from the first block when streaming

EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
              ".csv": "csv", ".tsv": "csv", ".txt": "text", ".text": "text"}
ALIASES = {"ndjson": "jsonl", "json_lines": "jsonl", "txt": "text", "tsv": "csv", "pq": "parquet"}
COMPRESSION = (".gz", ".bz2", ".zst", ".lz4")
_CSV_READ = {"block_size", "column_names", "autogenerate_column_names", "skip_rows", "skip_rows_after_names",
             "encoding"}
_CSV_PARSE = {"delimiter", "quote_char", "double_quote", "escape_char", "newlines_in_values", "ignore_empty_lines"}
_CSV_CONVERT = {"null_values", "true_values", "false_values", "strings_can_be_null", "quoted_strings_can_be_null",
                "include_columns", "include_missing_columns", "timestamp_parsers", "decimal_point",
                "auto_dict_encode", "check_utf8"}
OPTIONS = {
    "csv": _CSV_READ | _CSV_PARSE | _CSV_CONVERT | {"schema"},
    "jsonl": {"schema", "block_size", "newlines_in_values"},
    "json": {"schema", "block_size", "newlines_in_values", "field", "encoding"},
    "parquet": {"columns"},
    "text": {"encoding", "column"},
}


def _plain(value: Any) -> Any:
    """Options as plain data for the fingerprint (Arrow types and schemas by their text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if type(value).__module__.startswith("pyarrow"):
        return str(value)
    return value


def _extension(path: str) -> str:
    """A file's extension, lower case, compression suffixes (.gz ...) ignored."""
    base = path.lower()
    for suffix in COMPRESSION:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return os.path.splitext(base)[1]


def detect_format(path: str) -> str | None:
    """The format a file's extension names, or None."""
    return EXTENSIONS.get(_extension(path))


def _check_options(fmt: str, options: dict[str, Any]) -> str | None:
    unknown = sorted(set(options) - OPTIONS[fmt])
    if unknown:
        return (f"unknown option(s) {', '.join(unknown)} for format {fmt!r}; it takes "
                f"{', '.join(sorted(OPTIONS[fmt]))}")
    return None


# -- read ------------------------------------------------------------------------------------------
class Read(Action):
    """A local JSON / JSON Lines / CSV / Parquet / text file as a table; see `read`."""

    kind = "read"
    version = 1

    def __init__(self, format: str | None = None, **options: Any):  # noqa: A002 - the documented keyword
        if format == "tsv":
            options.setdefault("delimiter", "\t")
        if format is not None:
            format = ALIASES.get(format, format)
            if format not in OPTIONS:
                raise ValueError(f"read(): unknown format {format!r}; formats: {', '.join(OPTIONS)}")
            problem = _check_options(format, options)
            if problem:
                raise TypeError(f"read(): {problem}")
        self.format = format
        self.options = options
        self.resolved: str | None = format
        self._bound: str | None = None

    def bind(self, rule: Rule) -> None:
        if len(rule.inputs) != 1:
            raise DreamError(f"rule {rule.name!r}: rules.read() reads exactly one input file; the rule has "
                             f"{len(rule.inputs)}", rule.where)
        if len(rule.outputs) != 1 or not is_table_path(rule.outputs[0][1]):
            raise DreamError(f"rule {rule.name!r}: rules.read() writes one Parquet output", rule.where)
        path = rule.inputs[0][1]
        fmt = self.format or detect_format(path)
        if fmt is None:
            raise DreamError(f"rule {rule.name!r}: cannot tell the format of {path} from its extension", rule.where,
                             hint=f"pass format= (one of {', '.join(OPTIONS)})")
        problem = _check_options(fmt, self.options)
        if problem:
            raise DreamError(f"rule {rule.name!r}: rules.read(): {problem}", rule.where)
        if self._bound is not None and self.resolved != fmt:
            raise DreamError(f"rule {rule.name!r}: this rules.read() is already used by rule {self._bound!r} for "
                             f"{self.resolved} files", rule.where, hint="give each rule its own rules.read()")
        self.resolved, self._bound = fmt, rule.name

    def params(self) -> dict[str, Any]:
        return {"format": self.resolved, "options": _plain(self.options)}

    def execute(self, ctx: JobContext) -> None:
        path = ctx.input_path(0)
        fmt = self.resolved or detect_format(path)
        if fmt is None or os.path.isdir(path):
            raise fail(ctx, f"cannot read {path}: not a file of a known format", hint="pass format=")
        reader = getattr(self, f"_{fmt}")
        reader(ctx, path, dict(self.options))

    # one method per format: each writes the rule's output
    def _parquet(self, ctx: JobContext, path: str, options: dict[str, Any]) -> None:
        import pyarrow.parquet as pq

        columns = options.get("columns")
        if columns is not None:
            check_columns(ctx, path, columns, "read columns=")
        pf = pq.ParquetFile(path, memory_map=True)
        schema = schema_of(path)
        if columns is not None:
            import pyarrow as pa

            schema = pa.schema([schema.field(c) for c in columns])
        write(ctx, pf.iter_batches(batch_size=BATCH_ROWS, columns=columns), schema=schema)

    def _text(self, ctx: JobContext, path: str, options: dict[str, Any]) -> None:
        import pyarrow as pa

        column = options.get("column", "text")
        encoding = options.get("encoding", "utf-8")

        def lines() -> Iterator[pa.Table]:
            with _open_text(path, encoding) as f:
                rest = ""
                while True:
                    chunk = f.read(TEXT_CHUNK)
                    if not chunk:
                        break
                    parts = (rest + chunk).split("\n")
                    rest = parts.pop()
                    yield pa.table({column: pa.array(parts, pa.string())})
                if rest:
                    yield pa.table({column: pa.array([rest], pa.string())})

        try:
            write(ctx, lines(), schema=pa.schema([(column, pa.string())]))
        except (UnicodeDecodeError, LookupError) as exc:
            raise fail(ctx, f"cannot read {path} as {encoding} text: {exc}", hint="pass encoding=") from None

    def _csv(self, ctx: JobContext, path: str, options: dict[str, Any]) -> None:
        import pyarrow.csv as pacsv

        if "delimiter" not in options and _extension(path) == ".tsv":
            options["delimiter"] = "\t"
        schema = options.pop("schema", None)
        if schema is not None:
            options["column_types"] = _schema(ctx, schema)
        options.setdefault("block_size", CSV_BLOCK)
        try:
            read_options = pacsv.ReadOptions(**_pick(options, _CSV_READ))
            parse_options = pacsv.ParseOptions(**_pick(options, _CSV_PARSE))
            convert_options = pacsv.ConvertOptions(**_pick(options, _CSV_CONVERT | {"column_types"}))
        except (TypeError, ValueError) as exc:
            raise fail(ctx, f"read: bad CSV option: {exc}") from None
        _stream_or_whole(ctx, path, "CSV",
                         lambda: pacsv.open_csv(path, read_options, parse_options, convert_options),
                         lambda: pacsv.read_csv(path, read_options, parse_options, convert_options))

    def _jsonl(self, ctx: JobContext, path: str, options: dict[str, Any]) -> None:
        import pyarrow.json as pajson

        read_kw = {"block_size": options.get("block_size", CSV_BLOCK)}
        parse_kw: dict[str, Any] = {}
        if "newlines_in_values" in options:
            parse_kw["newlines_in_values"] = options["newlines_in_values"]
        if options.get("schema") is not None:
            parse_kw["explicit_schema"] = _schema(ctx, options["schema"])
        read_options = pajson.ReadOptions(**read_kw)
        parse_options = pajson.ParseOptions(**parse_kw)
        _stream_or_whole(ctx, path, "JSON Lines",
                         lambda: pajson.open_json(path, read_options, parse_options),
                         lambda: pajson.read_json(path, read_options, parse_options),
                         hint="if the file is one JSON document, pass field= to pick its list of rows")

    def _json(self, ctx: JobContext, path: str, options: dict[str, Any]) -> None:
        import pyarrow as pa

        encoding = options.get("encoding", "utf-8")
        field = options.get("field")
        if field is None and _first_char(path, encoding) != "[":
            self._jsonl(ctx, path, options)  # a .json file of one object per line
            return
        try:
            with _open_text(path, encoding) as f:
                data = json.load(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(ctx, f"cannot read {path} as JSON: {exc}") from None
        if field is not None:
            if not isinstance(data, dict) or field not in data:
                keys = ", ".join(data) if isinstance(data, dict) else f"a {type(data).__name__}"
                raise fail(ctx, f"read field={field!r}: {path} has no top-level key {field!r} (it has {keys})")
            data = data[field]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise fail(ctx, f"cannot read {path}: expected a list of objects (one per row)"
                            + (f" under {field!r}" if field else ""), hint="pass field= to pick the list of rows")
        schema = options.get("schema")
        try:
            struct = pa.array(data, type=None if schema is None else pa.struct(list(_schema(ctx, schema))))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise fail(ctx, f"cannot make a table of the rows in {path}: {exc}",
                       hint="give the columns types with schema=") from None
        table = pa.Table.from_struct_array(struct) if len(data) else pa.table({})
        del data
        write(ctx, table.to_batches(max_chunksize=BATCH_ROWS), schema=table.schema)


def _pick(options: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in names}


def _open_text(path: str, encoding: str) -> io.TextIOWrapper:
    """A text file, decompressed by extension (.gz, .bz2, .zst, .lz4); newlines normalised to \\n."""
    import pyarrow as pa

    return io.TextIOWrapper(pa.input_stream(path, compression="detect"), encoding=encoding, newline=None)


def _first_char(path: str, encoding: str) -> str:
    with _open_text(path, encoding) as f:
        while True:
            chunk = f.read(4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip("\ufeff \t\r\n")
            if stripped:
                return stripped[0]


def _schema(ctx: JobContext, value: Any) -> pa.Schema:
    """schema= as an Arrow schema: a pa.Schema, or a dict of column -> type (a pa.DataType or a name)."""
    import pyarrow as pa

    if isinstance(value, pa.Schema):
        return value
    if not isinstance(value, dict):
        raise fail(ctx, f"read schema= must be a dict {{column: type}} or a pyarrow schema, got {value!r}")
    fields = []
    for name, kind in value.items():
        if isinstance(kind, str):
            try:
                kind = pa.type_for_alias(kind)
            except ValueError:
                raise fail(ctx, f"read schema=: unknown type {kind!r} for column {name!r}",
                           hint="use names like 'string', 'int64', 'float64', 'bool', or pyarrow types") from None
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _stream_or_whole(ctx: JobContext, path: str, what: str, open_stream: Any, read_whole: Any,
                     hint: str | None = None) -> None:
    """Stream a CSV/JSON file block by block; if a later block disagrees with the types inferred from the
    first one, read the whole file (the reader then infers types from all of it)."""
    import pyarrow as pa

    try:
        write(ctx, open_stream())
        return
    except pa.ArrowInvalid:
        pass
    try:
        table = read_whole()
    except pa.ArrowInvalid as exc:
        raise fail(ctx, f"cannot read {path} as {what}: {exc}".splitlines()[0],
                   hint=hint or "give column types with schema={...}") from None
    write(ctx, table.to_batches(max_chunksize=BATCH_ROWS), schema=table.schema)


# -- rows ------------------------------------------------------------------------------------------
class Rows(Action):
    """Rows written in the Dreamfile; see `rows`."""

    kind = "rows"
    version = 1

    def __init__(self, data: list[dict[str, Any]] | dict[str, list[Any]]):
        if isinstance(data, dict):
            lengths = {k: len(v) if isinstance(v, (list, tuple)) else None for k, v in data.items()}
            bad = [k for k, n in lengths.items() if n is None]
            if bad:
                raise TypeError(f"rows(): in a dict of columns every value must be a list; {bad[0]!r} is not")
            if len(set(lengths.values())) > 1:
                raise ValueError(f"rows(): the columns have different lengths: {lengths}")
            data = {str(k): list(v) for k, v in data.items()}
        elif isinstance(data, (list, tuple)):
            bad_rows = [i for i, r in enumerate(data) if not isinstance(r, dict)]
            if bad_rows:
                raise TypeError(f"rows(): a list of rows must hold dicts; row {bad_rows[0]} is a "
                                f"{type(data[bad_rows[0]]).__name__}")
            data = [dict(r) for r in data]
        else:
            raise TypeError(f"rows() takes a list of dicts or a dict of column lists, got {type(data).__name__}")
        self.data = data

    def bind(self, rule: Rule) -> None:
        if rule.inputs:
            raise DreamError(f"rule {rule.name!r}: rules.rows() takes no input=", rule.where)
        if len(rule.outputs) != 1 or not is_table_path(rule.outputs[0][1]):
            raise DreamError(f"rule {rule.name!r}: rules.rows() writes one Parquet output", rule.where)

    def params(self) -> dict[str, Any]:
        return {"rows": self.data}

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        try:
            if isinstance(self.data, dict):
                table = pa.table(self.data)
            elif self.data:
                table = pa.Table.from_struct_array(pa.array(self.data))
            else:
                table = pa.table({})
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise fail(ctx, f"rows(): the values do not form a table: {exc}",
                       hint="give each column values of one type") from None
        write(ctx, table.to_batches(max_chunksize=BATCH_ROWS), schema=table.schema)


# -- Hugging Face datasets -------------------------------------------------------------------------
def is_local_dataset(name: str) -> bool:
    """A folder path rather than a Hub name: it exists, or is written like a path (./x, /x, x/, a/b/c)."""
    return (os.path.exists(name) or name.startswith((".", "/", "~")) or name.endswith(("/", os.sep))
            or name.count("/") > 1)


def _snake(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()


class HFDataset(Action):
    """A split of a Hugging Face dataset, from a local folder or the local Hub cache; see `hf_dataset`."""

    kind = "hf_dataset"
    version = 1

    def __init__(self, name: str, config: str | None = None, split: str = "train", revision: str | None = None,
                 data_dir: str | None = None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"hf_dataset() needs a dataset name or folder, got {name!r}")
        for option, value in (("config", config), ("split", split), ("revision", revision), ("data_dir", data_dir)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"hf_dataset(): {option}= must be a string, got {value!r}")
        self.local = is_local_dataset(name)
        if self.local and revision is not None:
            raise ValueError(f"hf_dataset(): revision= is for Hub datasets; {name!r} is a local folder")
        self.name = normalize(os.path.expanduser(name)) if self.local else name
        self.config, self.split, self.revision, self.data_dir = config, split, revision, data_dir

    def extra_inputs(self) -> list[str]:
        """A local dataset folder is an input of the rule: its content enters the fingerprint."""
        return [self.name] if self.local else []

    def bind(self, rule: Rule) -> None:
        if rule.inputs:
            raise DreamError(f"rule {rule.name!r}: rules.hf_dataset() takes no input= (a local dataset folder is "
                             "its first argument)", rule.where)
        if len(rule.outputs) != 1 or not is_table_path(rule.outputs[0][1]):
            raise DreamError(f"rule {rule.name!r}: rules.hf_dataset() writes one Parquet output", rule.where)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"name": self.name, "config": self.config, "split": self.split,
                                  "revision": self.revision, "data_dir": self.data_dir}
        if not self.local:
            params["cached"] = self.cached_identity()
        return params

    # -- the local Hub cache -----------------------------------------------------------------------
    def cache_root(self) -> str:
        """Where `datasets` keeps this Hub dataset's prepared Arrow files."""
        parts = self.name.split("/")
        parts[-1] = _snake(parts[-1])
        return os.path.join(datasets_cache(), "___".join(parts))

    def cached_versions(self) -> list[str]:
        """Prepared copies in the cache, as `config/version/commit` (commit: the Hub commit hash)."""
        root = self.cache_root()
        found = []
        for folder in glob.glob(os.path.join(glob.escape(root), "*", "*", "*")):
            if os.path.isfile(os.path.join(folder, "dataset_info.json")):
                found.append(os.path.relpath(folder, root).replace(os.sep, "/"))
        return sorted(found)

    def revision_commit(self) -> str | None:
        """The commit hash `revision` names, read offline (a hash itself, or a ref in the hub cache)."""
        if self.revision is None:
            return None
        if re.fullmatch(r"[0-9a-f]{7,40}", self.revision):
            return self.revision
        ref = os.path.join(hub_cache(), "datasets--" + self.name.replace("/", "--"), "refs", self.revision)
        try:
            with open(ref) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def cached_identity(self) -> list[list[str]]:
        """What the cache holds for this dataset (each copy with its commit and dataset_info.json hash)."""
        from dreammake.content import hash_file_bytes

        root = self.cache_root()
        return [[v, hash_file_bytes(os.path.join(root, v, "dataset_info.json"))] for v in self.cached_versions()]

    # -- running -----------------------------------------------------------------------------------
    def execute(self, ctx: JobContext) -> None:
        import logging

        import datasets

        quiet = not datasets.are_progress_bars_disabled()
        if quiet:
            datasets.disable_progress_bars()
        logger = logging.getLogger("datasets")  # "using the latest cached version..." notes are noise here
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            dataset = self._load_local(ctx) if self.local else self._load_hub(ctx)
            if isinstance(dataset, datasets.DatasetDict):
                if self.split not in dataset:
                    raise fail(ctx, f"dataset {self.name!r} has no split {self.split!r} (it has "
                                    f"{', '.join(dataset)})", hint="pass split=")
                dataset = dataset[self.split]
            schema = dataset.features.arrow_schema
            write(ctx, dataset.with_format("arrow").iter(batch_size=BATCH_ROWS), schema=schema)
        finally:
            logger.setLevel(level)
            if quiet:
                datasets.enable_progress_bars()

    def _load_local(self, ctx: JobContext) -> Any:
        import datasets

        folder = os.path.join(self.name, self.data_dir) if self.data_dir else self.name
        if not os.path.isdir(folder):
            raise fail(ctx, f"dataset folder {folder} does not exist or is not a folder")
        try:
            if os.path.isfile(os.path.join(folder, "dataset_dict.json")) or \
                    os.path.isfile(os.path.join(folder, "state.json")):
                return datasets.load_from_disk(folder)
            return datasets.load_dataset(self.name, self.config, split=self.split, data_dir=self.data_dir,
                                         cache_dir=os.path.join(ctx.work_dir, "hf-cache"))
        except DreamError:
            raise
        except Exception as exc:
            raise fail(ctx, f"cannot load dataset folder {self.name}: {_first_line(exc)}") from None

    def _load_hub(self, ctx: JobContext) -> Any:
        from datasets.packaged_modules.cache.cache import Cache

        root = self.cache_root()
        versions = self.cached_versions()
        offline = "it is not in the local cache and the network is not used"
        hint = "load it once with network access (datasets.load_dataset), or give hf_dataset() a local folder"
        if not versions:
            if os.path.isdir(self.name):
                hint = f"to read the local folder, write it as {self.name + '/'!r} or {'./' + self.name!r}"
            raise fail(ctx, f"Hugging Face dataset {self.name!r} is not available offline: {offline} "
                            f"({root})", hint=hint)
        if self.config is not None and not any(v.split("/")[0].startswith(self.config) for v in versions):
            configs = sorted({v.split("/")[0] for v in versions})
            raise fail(ctx, f"Hugging Face dataset {self.name!r} config {self.config!r} is not available offline: "
                            f"{offline} (cached configs: {', '.join(configs)})", hint=hint)
        kwargs: dict[str, Any] = {"cache_dir": datasets_cache(), "dataset_name": self.name.split("/")[-1],
                                  "repo_id": self.name}
        if self.data_dir is not None:
            kwargs["data_dir"] = self.data_dir
        commit = self.revision_commit()
        if self.revision is not None:
            matches = [v for v in versions if commit is not None and v.split("/")[2].startswith(commit)
                       and (self.config is None or v.split("/")[0] == self.config)]
            if not matches:
                raise fail(ctx, f"Hugging Face dataset {self.name!r} at revision {self.revision!r} is not available"
                                f" offline: {offline} (cached: {', '.join(versions)})", hint=hint)
            config, version, commit_hash = matches[-1].split("/")
            kwargs.update(config_name=config, version=version, hash=commit_hash)
        else:
            kwargs.update(config_name=self.config, version="auto", hash="auto")
        try:
            builder = Cache(**kwargs)
            return builder.as_dataset(split=self.split)
        except Exception as exc:
            raise fail(ctx, f"cannot load Hugging Face dataset {self.name!r} from the local cache: "
                            f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# -- factories (what a Dreamfile calls) ------------------------------------------------------------
def read(format: str | None = None, **options: Any) -> Read:  # noqa: A002 - the documented keyword
    """Read the rule's input file into Parquet: JSON (a list of objects, or field= to pick one inside an
    object), JSON Lines, CSV/TSV, Parquet or plain text (one row per line in column `text`), chosen by the
    extension (.gz/.bz2/.zst also read) or format= ("json", "jsonl", "csv", "parquet", "text").

    Options: CSV `delimiter=`, `column_names=`, `skip_rows=`, `null_values=`...; JSON/CSV `schema=` (a dict
    {column: type} fixing column types); Parquet `columns=`; text `encoding=`, `column=`.
    Example: `rule("raw", input="data/q.csv", output="targets/q.parquet", run=rules.read(delimiter=";"))`.
    """
    return Read(format, **options)


def rows(data: list[dict[str, Any]] | dict[str, list[Any]]) -> Rows:
    """Inline rows: a list of dicts (one per row) or a dict of column lists. They are the rule's params,
    so editing them reruns the rule.

    Example: `rule("topics", output="targets/topics.parquet", run=rules.rows([{"topic": "tides"}]))`.
    """
    return Rows(data)


def hf_dataset(name: str, config: str | None = None, split: str = "train", revision: str | None = None,
               data_dir: str | None = None) -> HFDataset:
    """One split of a Hugging Face dataset, offline: `name` is a local folder (saved with `save_to_disk`, or
    holding data files such as JSONL/CSV/Parquet; it becomes an input of the rule) or a Hub name that is
    already in the local `datasets` cache (never downloaded). Write a folder made by another rule with a
    trailing slash or ./ (e.g. "targets/ds/"). `split` may slice ("train[:100]") for data-file folders and
    Hub datasets.

    Example: `rule("squad", output="targets/squad.parquet", run=rules.hf_dataset("rajpurkar/squad",
    split="validation"))`.
    """
    return HFDataset(name, config, split, revision, data_dir)

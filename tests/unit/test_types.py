"""Typed tables: the type mapping (types.py), the typed manifest of an export, and the destination step's typed
create / compare / add-column / load-error paths against a fake Storage client."""

import json
import logging
from types import SimpleNamespace

import pytest
from keboola.component.exceptions import UserException

from configuration import Configuration
from storage_api.errors import JobFailed
from workflows import types
from workflows.destination import DataFile, Destination, TableTarget, error_column
from workflows.export import write_typed_manifest
from workflows.plan import plan_tables
from workflows.types import BIGQUERY, SNOWFLAKE, ColumnType, NativeType, TableTypes


def typed_detail(table_id, columns, *, backend=SNOWFLAKE, primary_key=(), rows=0):
    """A typed table detail as Storage answers it (addendum 1c): ``columns`` = (name, type, length, nullable[,
    basetype]); ``definition.columns`` sorted by name, not in table order."""
    entries = []
    for name, type_, length, nullable, *base in columns:
        definition = {"type": type_, "nullable": nullable}
        if length is not None:
            definition["length"] = length
        entry = {"name": name, "definition": definition, "canBeFiltered": True}
        if base:
            entry["basetype"] = base[0]
        entries.append(entry)
    return {
        "id": table_id,
        "columns": [c[0] for c in columns],
        "primaryKey": list(primary_key),
        "isTyped": True,
        "rowsCount": rows,
        "bucket": {"id": table_id.rsplit(".", 1)[0], "backend": backend},
        "definition": {"primaryKeysNames": list(primary_key), "columns": sorted(entries, key=lambda e: e["name"])},
    }


EVERY_SNOWFLAKE_TYPE = [
    ("id", "NUMBER", "38,0", False, "NUMERIC"),  # Storage says NUMERIC for every NUMBER
    ("name", "VARCHAR", "255", True, "STRING"),
    ("note", "VARCHAR", "16777216", True, "STRING"),
    ("amount", "NUMBER", "10,2", True, "NUMERIC"),
    ("big", "NUMBER", "38,2", True, "NUMERIC"),
    ("ratio", "FLOAT", None, True, "FLOAT"),
    ("active", "BOOLEAN", None, True, "BOOLEAN"),
    ("day", "DATE", None, True, "DATE"),
    ("ts", "TIMESTAMP_NTZ", "9", True, "TIMESTAMP"),
]


def snowflake_types():
    detail = typed_detail("in.c-a.t", EVERY_SNOWFLAKE_TYPE, primary_key=["id"])
    return types.from_table_detail(detail, SNOWFLAKE)


# -- aliases, base types ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("backend", "given", "expected"),
    [
        (SNOWFLAKE, ("INT", None), ("NUMBER", "38,0")),
        (SNOWFLAKE, ("integer", None), ("NUMBER", "38,0")),
        (SNOWFLAKE, ("NUMBER", None), ("NUMBER", "38,0")),
        (SNOWFLAKE, ("DECIMAL", "10, 2"), ("NUMBER", "10,2")),
        (SNOWFLAKE, ("NUMERIC", "12"), ("NUMBER", "12,0")),
        (SNOWFLAKE, ("TEXT", None), ("VARCHAR", "16777216")),
        (SNOWFLAKE, ("STRING", "20"), ("VARCHAR", "20")),
        (SNOWFLAKE, ("CHAR", None), ("VARCHAR", "1")),
        (SNOWFLAKE, ("DOUBLE PRECISION", None), ("FLOAT", None)),
        (SNOWFLAKE, ("DATETIME", None), ("TIMESTAMP_NTZ", "9")),
        (SNOWFLAKE, ("TIMESTAMP", "3"), ("TIMESTAMP_NTZ", "3")),
        (BIGQUERY, ("INT64", None), ("INTEGER", None)),
        (BIGQUERY, ("FLOAT", None), ("FLOAT64", None)),
        (BIGQUERY, ("BOOLEAN", None), ("BOOL", None)),
        (BIGQUERY, ("DECIMAL", "10,2"), ("NUMERIC", "10,2")),
        (BIGQUERY, ("NUMERIC", None), ("NUMERIC", "38,9")),
        (BIGQUERY, ("BIGDECIMAL", None), ("BIGNUMERIC", "76,38")),
    ],
)
def test_aliases_are_normalised_with_the_default_length(backend, given, expected):
    native = types.canonical(backend, *given)
    assert (native.type, native.length) == expected


@pytest.mark.parametrize(
    ("backend", "type_", "length", "basetype"),
    [
        (SNOWFLAKE, "NUMBER", "38,0", "INTEGER"),
        (SNOWFLAKE, "INT", None, "INTEGER"),
        (SNOWFLAKE, "NUMBER", "10,2", "NUMERIC"),
        (SNOWFLAKE, "FLOAT", None, "FLOAT"),
        (SNOWFLAKE, "BOOLEAN", None, "BOOLEAN"),
        (SNOWFLAKE, "DATE", None, "DATE"),
        (SNOWFLAKE, "TIMESTAMP_TZ", "9", "TIMESTAMP"),
        (SNOWFLAKE, "VARIANT", None, "STRING"),
        (SNOWFLAKE, "TIME", None, "STRING"),
        (BIGQUERY, "INT64", None, "INTEGER"),
        (BIGQUERY, "BIGNUMERIC", None, "NUMERIC"),
        (BIGQUERY, "FLOAT64", None, "FLOAT"),
        (BIGQUERY, "BOOL", None, "BOOLEAN"),
        (BIGQUERY, "DATETIME", None, "TIMESTAMP"),
        (BIGQUERY, "JSON", None, "STRING"),
        (None, "NUMBER", "10,2", "NUMERIC"),
        (None, "FLOAT64", None, "FLOAT"),
    ],
)
def test_basetype_of_a_native_type(backend, type_, length, basetype):
    assert types.basetype_of(backend, type_, length) == basetype


# -- reading a table detail ---------------------------------------------------------------------------------------
def test_detail_types_follow_the_column_order_and_keep_lengths_nullability_and_base_lengths():
    detail = typed_detail("in.c-a.t", [("b", "VARCHAR", 20, True), ("a", "NUMBER", "10,2", False, "NUMERIC")])
    detail["definition"]["columns"][0]["definition"]["default"] = "0"
    table = types.from_table_detail(detail, SNOWFLAKE)
    assert [c.name for c in table.columns] == ["b", "a"]
    b, a = table.columns
    assert b == ColumnType("b", "STRING", "20", True, {SNOWFLAKE: NativeType("VARCHAR", "20")})
    assert a == ColumnType("a", "NUMERIC", "10,2", False, {SNOWFLAKE: NativeType("NUMBER", "10,2", "0")})
    assert types.from_table_detail({**detail, "isTyped": False}, SNOWFLAKE) is None


def test_an_alias_of_a_typed_table_has_the_definition_of_its_source_table():
    """An alias detail carries no ``definition`` of its own, its source's is under ``sourceTable`` (addendum 5)."""
    table = typed_detail("in.c-a.t", EVERY_SNOWFLAKE_TYPE, primary_key=["id"])
    alias = {k: v for k, v in table.items() if k != "definition"} | {
        "id": "out.c-v.t",
        "isAlias": True,
        "sourceTable": {"id": "in.c-a.t", "definition": table["definition"]},
    }
    assert types.from_table_detail(alias, SNOWFLAKE) == types.from_table_detail(table, SNOWFLAKE)


# -- mapping ------------------------------------------------------------------------------------------------------
def test_same_backend_copies_type_length_nullability_and_default_without_notes():
    source = snowflake_types()
    mapped, notes = source.for_backend(SNOWFLAKE, ["id"])
    assert notes == []
    assert mapped.columns == source.columns
    request = types.definition_columns(mapped, SNOWFLAKE)
    assert request[0] == {"name": "id", "definition": {"type": "NUMBER", "length": "38,0", "nullable": False}}
    assert request[1] == {"name": "name", "definition": {"type": "VARCHAR", "length": "255", "nullable": True}}
    assert request[5] == {"name": "ratio", "definition": {"type": "FLOAT", "nullable": True}}


def test_snowflake_to_bigquery_maps_every_base_type_keeping_precision_scale_and_string_lengths():
    mapped, notes = snowflake_types().for_backend(BIGQUERY, ["id"])
    got = {c.name: (c.native[BIGQUERY].text(), c.nullable, c.basetype) for c in mapped.columns}
    assert got == {
        "id": ("INTEGER", False, "INTEGER"),
        "name": ("STRING(255)", True, "STRING"),
        "note": ("STRING", True, "STRING"),
        "amount": ("NUMERIC(10,2)", True, "NUMERIC"),
        "big": ("BIGNUMERIC(38,2)", True, "NUMERIC"),  # 36 integer digits do not fit NUMERIC(p,2)
        "ratio": ("FLOAT64", True, "FLOAT"),
        "active": ("BOOL", True, "BOOLEAN"),
        "day": ("DATE", True, "DATE"),
        "ts": ("TIMESTAMP", True, "TIMESTAMP"),
    }
    assert len(notes) == len(EVERY_SNOWFLAKE_TYPE)  # one line per mapped column
    assert notes[3] == "column amount: NUMBER(10,2) (Snowflake) -> NUMERIC(10,2) (BigQuery), base type NUMERIC"
    assert types.definition_columns(mapped, BIGQUERY)[3] == {
        "name": "amount",
        "definition": {"type": "NUMERIC", "length": "10,2", "nullable": True},
    }


def test_bigquery_to_snowflake_uses_the_base_types_defaults_where_no_length_says_otherwise():
    detail = typed_detail(
        "in.c-a.t",
        [
            ("id", "INTEGER", None, False),
            ("name", "STRING", None, True),
            ("code", "STRING", "3", True),
            ("price", "NUMERIC", None, True),
            ("amount", "NUMERIC", "10,2", True),
            ("huge", "BIGNUMERIC", "50,10", True),
            ("ratio", "FLOAT64", None, True),
            ("active", "BOOL", None, True),
            ("day", "DATE", None, True),
            ("ts", "TIMESTAMP", None, True),
        ],
        backend=BIGQUERY,
    )
    mapped, notes = types.from_table_detail(detail, BIGQUERY).for_backend(SNOWFLAKE, ["id"])
    got = {c.name: c.native[SNOWFLAKE].text() for c in mapped.columns}
    assert got == {
        "id": "NUMBER(38,0)",
        "name": "VARCHAR",
        "code": "VARCHAR(3)",
        "price": "NUMBER(38,9)",
        "amount": "NUMBER(10,2)",
        "huge": "NUMBER(38,10)",
        "ratio": "FLOAT",
        "active": "BOOLEAN",
        "day": "DATE",
        "ts": "TIMESTAMP_NTZ(9)",
    }
    assert "precision/scale 50,10 exceed Snowflake's" in notes[5]


def test_defaults_are_dropped_across_backends_and_key_columns_become_not_null():
    column = ColumnType("n", "INTEGER", None, True, {SNOWFLAKE: NativeType("NUMBER", "38,0", "0")})
    mapped, notes = TableTypes((column,), SNOWFLAKE).for_backend(BIGQUERY, ["n"])
    assert mapped.columns[0].nullable is False
    assert notes == [
        (
            "column n: NUMBER(38,0) (Snowflake) -> INTEGER NOT NULL (BigQuery), base type INTEGER (default 0 dropped; "
            "NOT NULL as a primary key column)"
        )
    ]
    same, same_notes = TableTypes((column,), SNOWFLAKE).for_backend(SNOWFLAKE, ["n"])
    assert same.columns[0].native[SNOWFLAKE].default == "0"
    assert same_notes == ["column n: NUMBER(38,0) NOT NULL (NOT NULL as a primary key column)"]


def test_an_unknown_destination_backend_gets_base_types_only():
    mapped, notes = snowflake_types().for_backend(None)
    assert types.definition_columns(mapped, None)[3] == {"name": "amount", "basetype": "NUMERIC"}
    assert all("the destination backend is unknown" in n for n in notes)


# -- comparing ----------------------------------------------------------------------------------------------------
def test_differences_ignore_aliases_and_a_more_permissive_existing_column():
    want = TableTypes((ColumnType("a", "INTEGER", None, False, {SNOWFLAKE: NativeType("NUMBER", "38,0")}),))
    alias = TableTypes((ColumnType("a", "INTEGER", None, True, {SNOWFLAKE: NativeType("INT")}),))
    assert types.differences(want, alias, SNOWFLAKE, ["a"]) == []
    other = TableTypes((ColumnType("a", "NUMERIC", "12,2", False, {SNOWFLAKE: NativeType("NUMBER", "12,2")}),))
    assert types.differences(want, other, SNOWFLAKE, ["a"]) == [("a", "NUMBER(38,0) NOT NULL", "NUMBER(12,2) NOT NULL")]
    nullable_wanted = TableTypes((ColumnType("a", "INTEGER", None, True, {SNOWFLAKE: NativeType("NUMBER", "38,0")}),))
    required = TableTypes((ColumnType("a", "INTEGER", None, False, {SNOWFLAKE: NativeType("NUMBER")}),))
    assert types.differences(nullable_wanted, required, SNOWFLAKE, ["a"]) == [("a", "NUMBER(38,0)", "NUMBER NOT NULL")]
    assert types.differences(want, alias, SNOWFLAKE, ["missing"]) == []


# -- manifests ----------------------------------------------------------------------------------------------------
def test_manifest_schema_states_native_types_per_backend_and_base_types():
    manifest = {
        "schema": [
            {
                "name": "id",
                "data_type": {"base": {"type": "INTEGER"}, "snowflake": {"type": "NUMBER", "length": "38,0"}},
                "nullable": False,
                "primary_key": True,
            },
            {
                "name": "amount",
                "data_type": {
                    "base": {"type": "NUMERIC", "length": "10,2"},
                    "snowflake": {"type": "NUMBER", "length": "10,2"},
                    "bigquery": {"type": "NUMERIC", "length": "10,2"},
                },
            },
            {"name": "name", "data_type": {"base": {"type": "STRING"}}},
        ]
    }
    table = types.from_manifest(manifest, ["id", "amount", "name"])
    assert [c.name for c in table.columns] == ["id", "amount", "name"]
    assert table.columns[0] == ColumnType("id", "INTEGER", None, False, {SNOWFLAKE: NativeType("NUMBER", "38,0")})
    assert set(table.columns[1].native) == {SNOWFLAKE, BIGQUERY} and table.columns[1].length == "10,2"
    assert table.columns[2] == ColumnType("name", "STRING")
    on_bigquery, notes = table.for_backend(BIGQUERY, ["id"])
    assert [c.native[BIGQUERY].text() for c in on_bigquery.columns] == ["INTEGER", "NUMERIC(10,2)", "STRING"]
    assert len(notes) == 2  # amount has a BigQuery type: not mapped


def test_a_schema_of_plain_strings_or_no_types_is_untyped():
    plain = {"schema": [{"name": "a", "data_type": {"base": {"type": "STRING"}}}, {"name": "b"}]}
    assert types.from_manifest(plain, ["a", "b"]) is None
    assert types.from_manifest({"columns": ["a"], "primary_key": ["a"]}, ["a"]) is None
    assert types.from_manifest({"column_metadata": {"a": [{"key": "KBC.description", "value": "x"}]}}, ["a"]) is None


def test_legacy_column_metadata_is_native_only_with_the_backend_named():
    column_metadata = {
        "id": [
            {"key": "KBC.datatype.type", "value": "NUMBER", "provider": "storage"},
            {"key": "KBC.datatype.nullable", "value": "", "provider": "storage"},
            {"key": "KBC.datatype.basetype", "value": "INTEGER", "provider": "storage"},
            {"key": "KBC.datatype.length", "value": "38,0", "provider": "storage"},
            {"key": "KBC.datatype.basetype", "value": "STRING", "provider": "keboola.ex-db"},
        ],
        "amount": [
            {"key": "KBC.datatype.type", "value": "NUMBER"},
            {"key": "KBC.datatype.basetype", "value": "NUMERIC"},
            {"key": "KBC.datatype.length", "value": "10,2"},
        ],
    }
    with_backend = {
        "column_metadata": column_metadata,
        "metadata": [{"key": "KBC.datatype.backend", "value": "snowflake"}],
    }
    table = types.from_manifest(with_backend, ["id", "amount", "plain"])
    assert table.columns[0] == ColumnType("id", "INTEGER", None, False, {SNOWFLAKE: NativeType("NUMBER", "38,0")})
    assert table.columns[1].native == {SNOWFLAKE: NativeType("NUMBER", "10,2")}
    assert table.columns[2] == ColumnType("plain", "STRING")
    without = types.from_manifest({"column_metadata": column_metadata}, ["id", "amount"])
    assert without.columns[1] == ColumnType("amount", "NUMERIC", "10,2")  # base type; the length still means p,s
    mapped, _ = without.for_backend(SNOWFLAKE)
    assert mapped.columns[1].native[SNOWFLAKE] == NativeType("NUMBER", "10,2")


# -- export manifest ----------------------------------------------------------------------------------------------
class _Tables:
    def __init__(self, details):
        self.details = details

    def list_in_bucket(self, bucket_id):
        return [{"id": t} for t in self.details if t.startswith(bucket_id + ".")]

    def detail(self, table_id):
        return self.details.get(table_id)


def _export_plan(detail, **table):
    config = Configuration.from_parameters(
        {
            "mode": "export",
            "source": {"url": "https://c.keboola.com", "#token": "t"},
            "tables": [{"source": detail["id"], **table}],
        },
        {},
    )
    client = SimpleNamespace(tables=_Tables({detail["id"]: detail}))
    return plan_tables(client, config.tables, mode="export")[0]


def _data_dir(tmp_path, config=None):
    (tmp_path / "out" / "tables").mkdir(parents=True)
    (tmp_path / "config.json").write_text(json.dumps(config or {"parameters": {}, "storage": {}}))
    return tmp_path


def test_typed_export_manifest_is_the_new_format_with_base_and_backend_types(tmp_path, monkeypatch):
    monkeypatch.delenv("KBC_STACKID", raising=False)
    detail = typed_detail("in.c-a.t", EVERY_SNOWFLAKE_TYPE[:4], primary_key=["id"])
    detail["columnMetadata"] = {
        "name": [
            {"key": "KBC.datatype.type", "value": "VARCHAR", "provider": "storage"},
            {"key": "KBC.description", "value": "Full name", "provider": "user"},
        ]
    }
    detail["metadata"] = [{"key": "KBC.dataTypesEnabled", "value": "true", "provider": "storage"}]
    plan = _export_plan(detail)
    data_dir = _data_dir(tmp_path)
    data = data_dir / "out" / "tables" / "t.csv"
    data.mkdir()
    path = write_typed_manifest(data_dir, data, plan, types.from_table_detail(detail, SNOWFLAKE), headerless=True)
    manifest = json.loads(path.read_text())
    assert sorted(p.name for p in (data_dir / "out" / "tables").iterdir()) == ["t.csv", "t.csv.manifest"]
    assert manifest["has_header"] is False and manifest["destination"] == "in.c-a.t"
    assert "columns" not in manifest and "column_metadata" not in manifest
    assert manifest["table_metadata"] == {"KBC.datatype.backend": "snowflake"}
    schema = {c["name"]: c for c in manifest["schema"]}
    assert list(schema) == ["id", "name", "note", "amount"]
    assert schema["id"] == {
        "name": "id",
        "data_type": {"base": {"type": "INTEGER"}, "snowflake": {"type": "NUMBER", "length": "38,0"}},
        "nullable": False,
        "primary_key": True,
    }
    assert schema["name"]["data_type"] == {
        "base": {"type": "STRING", "length": "255"},
        "snowflake": {"type": "VARCHAR", "length": "255"},
    }
    assert schema["name"]["metadata"] == {"KBC.description": "Full name"}
    assert schema["amount"]["data_type"]["base"] == {"type": "NUMERIC", "length": "10,2"}
    assert schema["note"]["nullable"] is True and "primary_key" not in schema["note"]


def test_typed_export_manifest_in_a_legacy_project_carries_kbc_datatype_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("KBC_STACKID", "connection.keboola.com")
    monkeypatch.setenv("KBC_PROJECT_FEATURE_GATES", "queuev2")
    monkeypatch.setenv("KBC_DATA_TYPE_SUPPORT", "none")
    detail = typed_detail("in.c-a.t", EVERY_SNOWFLAKE_TYPE[:4], primary_key=["id"])
    plan = _export_plan(detail)
    data_dir = _data_dir(tmp_path)
    data = data_dir / "out" / "tables" / "t.csv"
    data.write_text('"id","name","note","amount"\n')
    path = write_typed_manifest(data_dir, data, plan, types.from_table_detail(detail, SNOWFLAKE), headerless=False)
    manifest = json.loads(path.read_text())
    assert "schema" not in manifest and "columns" not in manifest  # a header row: no columns
    assert manifest["primary_key"] == ["id"]
    assert {"key": "KBC.datatype.backend", "value": "snowflake"} in manifest["metadata"]
    assert manifest["column_metadata"]["amount"] == [
        {"key": "KBC.datatype.type", "value": "NUMBER"},
        {"key": "KBC.datatype.nullable", "value": True},
        {"key": "KBC.datatype.basetype", "value": "NUMERIC"},
        {"key": "KBC.datatype.length", "value": "10,2"},
    ]


# -- destination ----------------------------------------------------------------------------------------------------
class FakeStorage:
    """The destination client surface Destination uses, over dicts; records the requests."""

    def __init__(self, buckets=None, tables=None, default_backend=SNOWFLAKE):
        self.bucket_details = dict(buckets or {})
        self.table_details = dict(tables or {})
        self.calls = []
        self.load_error = None
        self.default_backend = default_backend
        self.buckets = SimpleNamespace(detail=self.bucket_details.get, create=self._create_bucket)
        self.tables = SimpleNamespace(
            detail=self.table_details.get,
            create_definition=self._create_definition,
            load=self._load,
            add_column=self._add_column,
            delete_column=lambda t, c: self.calls.append(("delete_column", t, c)),
            delete=self._delete,
            create=lambda *a, **k: self.calls.append(("create", a, k)),
        )

    def verify_token(self):
        return {"owner": {"defaultBackend": self.default_backend}}

    def _create_bucket(self, name, stage):
        bucket = {"id": f"{stage}.c-{name}", "backend": self.default_backend}
        self.bucket_details[bucket["id"]] = bucket
        self.calls.append(("create_bucket", bucket["id"]))
        return bucket

    def _create_definition(self, bucket_id, name, columns, primary_key=()):
        self.calls.append(("create_definition", f"{bucket_id}.{name}", columns, list(primary_key)))
        self.table_details[f"{bucket_id}.{name}"] = {"id": f"{bucket_id}.{name}", "isTyped": True}
        return self.table_details[f"{bucket_id}.{name}"]

    def _load(self, table_id, file_id, **options):
        self.calls.append(("load", table_id, options))
        if self.load_error:
            raise self.load_error
        return {"id": 1, "status": "success"}

    def _add_column(self, table_id, name, **definition):
        self.calls.append(("add_column", table_id, name, definition))

    def _delete(self, table_id):
        self.calls.append(("delete", table_id))
        self.table_details.pop(table_id)


def _target(source_types, **extra):
    return TableTarget(
        table_id="in.c-b.t",
        origin="source table in.c-a.t",
        columns=tuple(c.name for c in source_types.columns),
        primary_key=("id",),
        follows_source=True,
        types=source_types,
        exact_nulls=True,
        **extra,
    )


def test_a_missing_table_is_created_from_the_definition_in_the_buckets_backend_then_loaded(caplog):
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "bigquery"}})
    destination = Destination(client, metadata_provider="p", tags=())
    prepared = destination.prepare(_target(snowflake_types()))
    with caplog.at_level(logging.INFO):
        destination.write(prepared, DataFile(7, headerless=True), incremental=False)
    (_, table_id, columns, pk), (_, _, options) = [c for c in client.calls if c[0] in ("create_definition", "load")]
    assert table_id == "in.c-b.t" and pk == ["id"]
    assert columns[3] == {"name": "amount", "definition": {"type": "NUMERIC", "length": "10,2", "nullable": True}}
    # BigQuery's null marker already keeps "" apart from NULL (an empty unquoted field)
    assert "treat_values_as_null" not in options and options["columns"] == [c[0] for c in EVERY_SNOWFLAKE_TYPE]
    mapped = [r.getMessage() for r in caplog.records if "(BigQuery), base type" in r.getMessage()]
    assert len(mapped) == len(EVERY_SNOWFLAKE_TYPE)
    assert (
        "Table in.c-b.t: column ts: TIMESTAMP_NTZ(9) (Snowflake) -> TIMESTAMP (BigQuery), base type TIMESTAMP."
        in mapped
    )


def test_a_snowflake_table_loads_a_typed_copy_with_empty_strings_kept_apart_from_nulls():
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}})
    destination = Destination(client, metadata_provider="p", tags=())
    prepared = destination.prepare(_target(snowflake_types()))
    assert prepared.notes == ()  # same backend: nothing mapped
    destination.write(prepared, DataFile(7, headerless=False), incremental=False)
    (_, _, columns, _), (_, _, options) = [c for c in client.calls if c[0] in ("create_definition", "load")]
    assert columns[0] == {"name": "id", "definition": {"type": "NUMBER", "length": "38,0", "nullable": False}}
    assert options == {"incremental": False, "columns": None, "on_submitted": None, "treat_values_as_null": []}


def test_a_new_bucket_takes_the_project_default_backend():
    client = FakeStorage(default_backend="bigquery")
    prepared = Destination(client, metadata_provider="p", tags=()).prepare(_target(snowflake_types()))
    assert ("create_bucket", "in.c-b") in client.calls
    assert prepared.backend == "bigquery" and prepared.create_types.columns[0].native[BIGQUERY].type == "INTEGER"


def test_an_existing_typed_table_of_another_type_is_one_sentence_or_a_rebuild():
    source = snowflake_types()
    columns = [c if c[0] != "amount" else ("amount", "NUMBER", "12,2", True) for c in EVERY_SNOWFLAKE_TYPE]
    existing = typed_detail("in.c-b.t", columns, primary_key=["id"], rows=5)
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}}, tables={"in.c-b.t": existing})
    with pytest.raises(UserException) as error:
        Destination(client, metadata_provider="p", tags=()).prepare(_target(source))
    assert str(error.value) == (
        "Table in.c-b.t cannot take the data because its column amount is NUMBER(12,2) but source table in.c-a.t "
        'has NUMBER(10,2); drop the table so that it is created again, or set schemaChanges to "rebuild".'
    )
    prepared = Destination(client, metadata_provider="p", tags=()).prepare(_target(source, rebuild=True))
    assert ("delete", "in.c-b.t") in client.calls and prepared.existing is None and prepared.create_types is not None


def test_an_untyped_destination_of_a_typed_source_is_refused():
    existing = {"id": "in.c-b.t", "columns": [c[0] for c in EVERY_SNOWFLAKE_TYPE], "primaryKey": ["id"]}
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}}, tables={"in.c-b.t": existing})
    with pytest.raises(UserException, match="it has no native types but source table in.c-a.t has them"):
        Destination(client, metadata_provider="p", tags=()).prepare(_target(snowflake_types()))


def test_new_source_columns_are_added_with_their_definition_nullable_on_a_table_with_rows():
    source = snowflake_types()
    existing = typed_detail("in.c-b.t", EVERY_SNOWFLAKE_TYPE[:2], primary_key=["id"], rows=3)
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}}, tables={"in.c-b.t": existing})
    Destination(client, metadata_provider="p", tags=()).prepare(_target(source))
    added = {c[2]: c[3] for c in client.calls if c[0] == "add_column"}
    assert list(added) == [c[0] for c in EVERY_SNOWFLAKE_TYPE[2:]]
    assert added["amount"] == {"definition": {"type": "NUMBER", "length": "10,2", "nullable": True}}


def test_an_untyped_source_adds_string_columns_to_a_typed_table_and_untyped_ones_to_an_untyped_table():
    existing = typed_detail("in.c-b.t", [("id", "NUMBER", "38,0", False)], primary_key=["id"])
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}}, tables={"in.c-b.t": existing})
    target = TableTarget("in.c-b.t", "source table in.c-a.t", ("id", "extra"), ("id",), follows_source=True)
    prepared = Destination(client, metadata_provider="p", tags=()).prepare(target)
    assert ("add_column", "in.c-b.t", "extra", {"basetype": "STRING"}) in client.calls
    Destination(client, metadata_provider="p", tags=()).write(prepared, DataFile(1, headerless=True), incremental=True)
    assert "treat_values_as_null" not in client.calls[-1][2]  # untyped data: Storage's NULL handling as before
    untyped = FakeStorage(tables={"in.c-b.t": {"id": "in.c-b.t", "columns": ["id"], "primaryKey": ["id"]}})
    untyped.bucket_details["in.c-b"] = {"id": "in.c-b"}
    Destination(untyped, metadata_provider="p", tags=()).prepare(target)
    assert ("add_column", "in.c-b.t", "extra", {}) in untyped.calls


def test_a_value_that_does_not_fit_its_type_is_one_sentence_with_table_column_and_job_message():
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}})
    destination = Destination(client, metadata_provider="p", tags=())
    prepared = destination.prepare(_target(snowflake_types()))
    message = (
        "Load error: An exception occurred while executing a query: Numeric value 'abc' is not recognized "
        'Row 1, column ""T""["AMOUNT":4]'
    )
    client.load_error = JobFailed({"id": 9, "status": "error", "error": {"message": message}})
    with pytest.raises(UserException) as error:
        destination.write(prepared, DataFile(7, headerless=True), incremental=False)
    assert message in client.load_error.message
    assert str(error.value) == (
        f"Loading table in.c-b.t failed: a value of column amount (NUMBER(10,2)) from source table in.c-a.t does not "
        f"fit its type: {client.load_error.message}"
    )


@pytest.mark.parametrize(
    ("message", "column"),
    [
        ("User character length limit (1) exceeded by string 'martin' File 'x', line 2 [\"NAME\":2]", "name"),
        ("Load error: Required field quantity cannot be null", "quantity"),
        ("Could not parse '00:00:00' as a timestamp for column ts", "ts"),
        ('Value "x" of column "Created At" is not a date', "Created At"),
        ("Load error: something else entirely", None),
    ],
)
def test_error_column(message, column):
    assert error_column(message, ["id", "name", "quantity", "ts", "Created At"]) == column


def _failed(message):
    return JobFailed({"id": 3, "status": "error", "error": {"message": message, "code": "valueConversion"}})


def test_a_conversion_error_without_a_column_names_the_one_column_of_that_kind_or_the_one_holding_the_value():
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}})
    destination = Destination(client, metadata_provider="p", tags=())
    prepared = destination.prepare(_target(snowflake_types()))
    boolean = "Table import error: Load error: An exception occurred while executing a query: Boolean value 'x' is not recognized"
    client.load_error = _failed(boolean)
    with pytest.raises(UserException, match=r"a value of column active \(BOOLEAN\) from source table"):
        destination.write(prepared, DataFile(7, headerless=True), incremental=False)
    numeric = "Table import error: Load error: Numeric value 'abc' is not recognized"
    client.load_error = _failed(numeric)
    with pytest.raises(UserException) as several:
        destination.write(prepared, DataFile(7, headerless=True), incremental=False)
    assert "column id (NUMBER(38,0) NOT NULL) or amount (NUMBER(10,2)) or big (NUMBER(38,2)) or ratio (FLOAT)" in str(
        several.value
    )
    other = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}})
    located = Destination(other, metadata_provider="p", tags=()).prepare(
        _target(snowflake_types(), find_value=lambda value, candidates: "big" if value == "abc" else None)
    )
    other.load_error = _failed(numeric)
    with pytest.raises(UserException, match=r"a value of column big \(NUMBER\(38,2\)\) from"):
        Destination(other, metadata_provider="p", tags=()).write(
            located, DataFile(7, headerless=True), incremental=False
        )
    client.load_error = _failed("Table import error: NULL result in a non-nullable column")
    with pytest.raises(UserException, match=r"a value of column id \(NUMBER\(38,0\) NOT NULL\)"):
        destination.write(prepared, DataFile(7, headerless=True), incremental=False)


def test_other_job_failures_of_a_typed_load_keep_the_general_sentence():
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}})
    destination = Destination(client, metadata_provider="p", tags=())
    prepared = destination.prepare(_target(snowflake_types()))
    client.load_error = _failed("Some columns are missing in the csv file. Missing columns: x.")
    with pytest.raises(UserException) as error:
        destination.write(prepared, DataFile(7, headerless=True), incremental=False)
    assert str(error.value).startswith("Loading table in.c-b.t failed: Storage job 3")


def test_input_find_value_reads_the_rows_of_a_plain_or_sliced_input(tmp_path):
    from workflows.input_tables import InputTable

    path = tmp_path / "t.csv"
    path.write_text('"id","n","m"\n"1","2",""\n"2","x","3"\n')
    table = InputTable("t.csv", path)
    assert table.find_value(["id", "n", "m"], "x", ["n", "m"]) == "n"
    assert table.find_value(["id", "n", "m"], None, ["n", "m"]) == "m"
    assert table.find_value(["id", "n", "m"], "y", ["n", "m"]) is None
    folder = tmp_path / "s.csv"
    folder.mkdir()
    (folder / "part1").write_text('"1","2","4"\n')
    (folder / "part2").write_text('"2","3","bad"\n')
    assert (
        InputTable("s.csv", folder, {"columns": ["id", "n", "m"]}).find_value(["id", "n", "m"], "bad", ["n", "m"])
        == "m"
    )


def test_fractions_cut_only_on_snowflake_without_the_feature():
    table = types.from_table_detail(
        typed_detail("in.c-a.t", [("ts", "TIMESTAMP_NTZ", "9", True), ("d", "TIMESTAMP_NTZ", "0", True)]), SNOWFLAKE
    )
    assert types.fractions_cut(table, []) == ["ts"]
    assert types.fractions_cut(table, [types.FRACTIONAL_SECONDS_FEATURE]) == []
    assert types.fractions_cut(TableTypes(table.columns, BIGQUERY), []) == []


def test_key_text_differs_for_decimal_float_and_timestamp_keys_across_backends():
    table = snowflake_types()
    assert types.key_text_differs(table, ["id"], BIGQUERY) is None  # integers print alike
    assert types.key_text_differs(table, ["id", "amount"], BIGQUERY) == "amount"
    assert types.key_text_differs(table, ["ts"], SNOWFLAKE) is None  # same backend: the same text
    assert types.key_text_differs(None, ["ts"], BIGQUERY) is None


def test_data_writing_null_as_quoted_empty_is_loaded_again_with_storages_null_handling(caplog):
    client = FakeStorage(buckets={"in.c-b": {"id": "in.c-b", "backend": "snowflake"}})
    failures = [_failed("Table import error: Load error: Numeric value '' is not recognized")]

    def load(table_id, file_id, **options):
        client.calls.append(("load", table_id, options))
        if failures:
            raise failures.pop()
        return {"id": 2, "status": "success"}

    client.tables.load = load
    destination = Destination(client, metadata_provider="p", tags=())
    prepared = destination.prepare(_target(snowflake_types()))
    with caplog.at_level(logging.WARNING):
        destination.write(prepared, DataFile(7, headerless=True), incremental=False)
    loads = [c[2] for c in client.calls if c[0] == "load"]
    assert [o.get("treat_values_as_null") for o in loads] == [[], None]
    assert 'loading it again with Storage\'s default, which reads every "" as NULL' in caplog.text


def test_a_filter_on_a_typed_column_storage_cannot_filter_by_is_refused_when_planning():
    detail = typed_detail("in.c-a.t", [("id", "NUMBER", "38,0", False), ("payload", "VARIANT", None, True)])
    detail["definition"]["columns"][1]["canBeFiltered"] = False  # sorted by name: payload is second
    where = [{"column": "payload", "values": ["x"]}]
    with pytest.raises(UserException) as error:
        _export_plan(detail, whereFilters=where)
    assert str(error.value) == (
        "The whereFilters column payload of table in.c-a.t is of type VARIANT, which Storage cannot filter by; "
        "remove the filter or filter by another column."
    )
    assert _export_plan(detail, whereFilters=[{"column": "id", "values": ["1"]}]).columns == ("id", "payload")

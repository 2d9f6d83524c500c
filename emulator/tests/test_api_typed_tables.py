"""Typed tables (addendum §1a-§1c): POST buckets/{id}/tables-definition (job tableDefinitionCreate), the typed table
detail (isTyped, definition, KBC.datatype.* storage metadata), the basetype -> native mapping and type aliases of
Snowflake and BigQuery, the request errors, project / bucket backends, the storage-metadata restriction."""

from __future__ import annotations

import pytest

from .conftest import Api

BASETYPE_COLUMNS = [
    {"name": "id", "basetype": "numeric"},  # a lower-case basetype is accepted
    {"name": "numeric", "basetype": "numeric"},
    {"name": "BOOLEAN", "basetype": "BOOLEAN"},
    {"name": "DATE", "basetype": "DATE"},
    {"name": "FLOAT", "basetype": "FLOAT"},
    {"name": "INTEGER", "basetype": "INTEGER"},
    {"name": "STRING", "basetype": "STRING"},
    {"name": "TIMESTAMP", "basetype": "TIMESTAMP"},
]


def define(api: Api, bucket_id: str, body: dict) -> dict:
    """POST tables-definition and wait: the finished job."""
    resp = api.post(f"/buckets/{bucket_id}/tables-definition", json=body)
    assert resp.status_code == 202, resp.text
    assert resp.json()["operationName"] == "tableDefinitionCreate"
    assert resp.json()["status"] == "waiting"
    return api.wait(resp.json())


def defined(api: Api, bucket_id: str, body: dict) -> dict:
    job = define(api, bucket_id, body)
    assert job["status"] == "success", job
    return job["results"]


@pytest.fixture
def bq_project(emu):
    return emu.create_project("bigquery-project", default_backend="bigquery")


@pytest.fixture
def bq_api(emu, bq_project, s3_env):
    return Api(emu.url, bq_project.token)


def test_response_definition_snowflake(api):
    """PHPT Snowflake/TableDefinitionOperationsTest::testResponseDefinition: INT -> NUMBER(38,0), VARCHAR ->
    VARCHAR(16777216), lengths as strings, a PK column NOT NULL; the job results are the table."""
    bucket = api.create_bucket("main")
    body = {
        "name": "my_new_table",
        "primaryKeysNames": ["id"],
        "columns": [
            {"name": "id", "definition": {"type": "INT", "nullable": False}},
            {"name": "name", "definition": {"type": "VARCHAR"}},
        ],
    }
    job = define(api, bucket, body)
    assert job["status"] == "success", job
    assert job["tableId"] == "in.c-main.my_new_table"
    assert job["operationParams"]["name"] == "my_new_table"
    results = job["results"]
    assert results["id"] == "in.c-main.my_new_table"
    detail = api.get("/tables/in.c-main.my_new_table").json()
    assert results == detail
    assert detail["isTyped"] is True
    assert detail["columns"] == ["id", "name"]
    assert detail["primaryKey"] == ["id"]
    assert (detail["rowsCount"], detail["dataSizeBytes"], detail["lastImportDate"]) == (0, 0, None)
    assert detail["definition"] == {
        "primaryKeysNames": ["id"],
        "columns": [
            {
                "name": "id",
                "definition": {"type": "NUMBER", "nullable": False, "length": "38,0"},
                "basetype": "NUMERIC",
                "canBeFiltered": True,
            },
            {
                "name": "name",
                "definition": {"type": "VARCHAR", "nullable": True, "length": "16777216"},
                "basetype": "STRING",
                "canBeFiltered": True,
            },
        ],
    }
    assert detail["bucket"]["backend"] == "snowflake"
    # the list shows it typed too
    listed = api.get("/tables", params={"include": "columns"}).json()
    assert [(t["id"], t["isTyped"]) for t in listed] == [("in.c-main.my_new_table", True)]


def test_basetypes_snowflake(api):
    """PHPT Snowflake testCreateTableBasetypes: NUMERIC -> NUMBER(38,9), INTEGER -> NUMBER(38,0) (reported with the
    basetype NUMERIC), TIMESTAMP -> TIMESTAMP_NTZ(9); definition.columns sorted by name case-insensitively, the
    table's columns in the request's order."""
    bucket = api.create_bucket("main")
    table = defined(api, bucket, {"name": "table_basetypes", "primaryKeysNames": ["id"], "columns": BASETYPE_COLUMNS})
    assert table["columns"] == [c["name"] for c in BASETYPE_COLUMNS]
    columns = table["definition"]["columns"]
    assert [c["name"] for c in columns] == [
        "BOOLEAN",
        "DATE",
        "FLOAT",
        "id",
        "INTEGER",
        "numeric",
        "STRING",
        "TIMESTAMP",
    ]
    assert {c["name"]: (c["definition"], c["basetype"]) for c in columns} == {
        "BOOLEAN": ({"type": "BOOLEAN", "nullable": True}, "BOOLEAN"),
        "DATE": ({"type": "DATE", "nullable": True}, "DATE"),
        "FLOAT": ({"type": "FLOAT", "nullable": True}, "FLOAT"),
        "id": ({"type": "NUMBER", "nullable": False, "length": "38,9"}, "NUMERIC"),
        "INTEGER": ({"type": "NUMBER", "nullable": True, "length": "38,0"}, "NUMERIC"),
        "numeric": ({"type": "NUMBER", "nullable": True, "length": "38,9"}, "NUMERIC"),
        "STRING": ({"type": "VARCHAR", "nullable": True, "length": "16777216"}, "STRING"),
        "TIMESTAMP": ({"type": "TIMESTAMP_NTZ", "nullable": True, "length": "9"}, "TIMESTAMP"),
    }


def test_basetypes_bigquery(bq_api):
    """PHPT Bigquery testCreateTableBasetypes (addendum §1b): STRING, INTEGER, NUMERIC, FLOAT64, BOOL, DATE,
    TIMESTAMP, no lengths; BigQuery keeps the table's column order."""
    bucket = bq_api.create_bucket("main")
    table = defined(bq_api, bucket, {"name": "t", "primaryKeysNames": ["id"], "columns": BASETYPE_COLUMNS})
    assert table["bucket"]["backend"] == "bigquery"
    columns = table["definition"]["columns"]
    assert [c["name"] for c in columns] == [c["name"] for c in BASETYPE_COLUMNS]
    assert {c["name"]: (c["definition"]["type"], c["basetype"]) for c in columns} == {
        "id": ("NUMERIC", "NUMERIC"),
        "numeric": ("NUMERIC", "NUMERIC"),
        "BOOLEAN": ("BOOL", "BOOLEAN"),
        "DATE": ("DATE", "DATE"),
        "FLOAT": ("FLOAT64", "FLOAT"),
        "INTEGER": ("INTEGER", "INTEGER"),
        "STRING": ("STRING", "STRING"),
        "TIMESTAMP": ("TIMESTAMP", "TIMESTAMP"),
    }
    assert all("length" not in c["definition"] for c in columns)
    assert columns[0]["definition"]["nullable"] is False  # the PK column


@pytest.mark.parametrize(
    ("backend", "definition", "expected"),
    [
        ("snowflake", {"type": "int"}, {"type": "NUMBER", "length": "38,0"}),
        ("snowflake", {"type": "BIGINT"}, {"type": "NUMBER", "length": "38,0"}),
        ("snowflake", {"type": "DECIMAL", "length": "4,3"}, {"type": "NUMBER", "length": "4,3"}),
        ("snowflake", {"type": "NUMBER", "length": 10}, {"type": "NUMBER", "length": "10,0"}),
        ("snowflake", {"type": "NUMERIC"}, {"type": "NUMBER", "length": "38,0"}),
        ("snowflake", {"type": "DOUBLE PRECISION"}, {"type": "FLOAT"}),
        ("snowflake", {"type": "STRING", "length": 12}, {"type": "VARCHAR", "length": "12"}),
        ("snowflake", {"type": "CHAR"}, {"type": "VARCHAR", "length": "1"}),
        ("snowflake", {"type": "DATETIME"}, {"type": "TIMESTAMP_NTZ", "length": "9"}),
        ("snowflake", {"type": "TIMESTAMP_NTZ", "length": 0}, {"type": "TIMESTAMP_NTZ", "length": "0"}),
        ("snowflake", {"type": "TIME"}, {"type": "TIME", "length": "9"}),
        ("snowflake", {"type": "BINARY"}, {"type": "BINARY", "length": "8388608"}),
        ("snowflake", {"type": "VECTOR", "length": "INT,3"}, {"type": "VECTOR", "length": "INT, 3"}),
        ("bigquery", {"type": "INT64"}, {"type": "INTEGER"}),
        ("bigquery", {"type": "SMALLINT"}, {"type": "INTEGER"}),
        ("bigquery", {"type": "DECIMAL", "length": "10,2"}, {"type": "NUMERIC", "length": "10,2"}),
        ("bigquery", {"type": "BIGDECIMAL"}, {"type": "BIGNUMERIC"}),
        ("bigquery", {"type": "FLOAT"}, {"type": "FLOAT64"}),
        ("bigquery", {"type": "BOOLEAN"}, {"type": "BOOL"}),
        ("bigquery", {"type": "STRING", "length": "20"}, {"type": "STRING", "length": "20"}),
    ],
)
def test_type_aliases_are_normalised(emu, s3_env, backend, definition, expected):
    """APIB "Data types in the definition are never alias/synonymous" (PHPT testResponseDefinition,
    testEmptyZeroLength, testDataPreviewExoticTypes; Bigquery TableDefinitionOperationsPartitioningTest)."""
    api = Api(emu.url, emu.create_project(f"aliases-{backend}", default_backend=backend).token)
    bucket = api.create_bucket("main")
    table = defined(api, bucket, {"name": "t", "columns": [{"name": "c", "definition": definition}]})
    (column,) = table["definition"]["columns"]
    assert column["definition"] == {**expected, "nullable": True}


def test_column_metadata_written_by_storage(api):
    """PHPT testCreateSnapshotOnTypedTable / testEmptyZeroLength: KBC.datatype.type, .nullable ("1" / ""),
    .basetype, .length (when the type has one), provider storage; table metadata KBC.dataTypesEnabled."""
    bucket = api.create_bucket("main")
    defined(
        api,
        bucket,
        {
            "name": "t",
            "primaryKeysNames": ["id"],
            "columns": [
                {"name": "id", "definition": {"type": "INT"}},
                {"name": "name", "definition": {"type": "VARCHAR"}},
                {"name": "flag", "basetype": "BOOLEAN"},
                {"name": "zero", "definition": {"type": "TIMESTAMP_NTZ", "length": 0, "nullable": True}},
            ],
        },
    )
    detail = api.get("/tables/in.c-main.t").json()
    assert [(m["key"], m["value"], m["provider"]) for m in detail["metadata"]] == [
        ("KBC.dataTypesEnabled", "true", "storage")
    ]
    column_metadata = {
        column: [(m["key"], m["value"], m["provider"]) for m in items]
        for column, items in detail["columnMetadata"].items()
    }
    assert column_metadata == {
        "id": [
            ("KBC.datatype.type", "NUMBER", "storage"),
            ("KBC.datatype.nullable", "", "storage"),
            ("KBC.datatype.basetype", "NUMERIC", "storage"),
            ("KBC.datatype.length", "38,0", "storage"),
        ],
        "name": [
            ("KBC.datatype.type", "VARCHAR", "storage"),
            ("KBC.datatype.nullable", "1", "storage"),
            ("KBC.datatype.basetype", "STRING", "storage"),
            ("KBC.datatype.length", "16777216", "storage"),
        ],
        "flag": [
            ("KBC.datatype.type", "BOOLEAN", "storage"),
            ("KBC.datatype.nullable", "1", "storage"),
            ("KBC.datatype.basetype", "BOOLEAN", "storage"),
        ],
        "zero": [
            ("KBC.datatype.type", "TIMESTAMP_NTZ", "storage"),
            ("KBC.datatype.nullable", "1", "storage"),
            ("KBC.datatype.basetype", "TIMESTAMP", "storage"),
            ("KBC.datatype.length", "0", "storage"),
        ],
    }


def test_storage_metadata_cannot_be_edited_on_typed_tables(api):
    """PHPT Common/MetadataTest::testTypedTableMetadataRestrictions: 403 storage.metadata.invalidProvider for
    writing or deleting provider "storage" metadata; other providers work as on any table."""
    bucket = api.create_bucket("main")
    defined(api, bucket, {"name": "t", "columns": [{"name": "id", "basetype": "INTEGER"}]})
    message = 'Metadata with "storage" provider cannot be edited by user.'
    for body in (
        {"provider": "storage", "metadata": [{"key": "KBC.datatype.type", "value": "VARCHAR"}]},
        {"provider": "storage", "columnsMetadata": {"id": [{"key": "KBC.datatype.type", "value": "VARCHAR"}]}},
    ):
        resp = api.post("/tables/in.c-main.t/metadata", json=body)
        assert resp.status_code == 403, resp.text
        assert (resp.json()["code"], resp.json()["error"]) == ("storage.metadata.invalidProvider", message)
    detail = api.get("/tables/in.c-main.t").json()
    metadata_id = detail["columnMetadata"]["id"][0]["id"]
    resp = api.delete(f"/tables/in.c-main.t/metadata/{metadata_id}")
    assert resp.status_code == 403
    assert resp.json()["code"] == "storage.metadata.invalidProvider"
    assert api.get("/tables/in.c-main.t").json()["columnMetadata"] == detail["columnMetadata"]
    resp = api.post("/tables/in.c-main.t/metadata", json={"provider": "user", "metadata": [{"key": "k", "value": "v"}]})
    assert resp.status_code == 200
    user_id = next(m["id"] for m in resp.json() if m["provider"] == "user")
    assert api.delete(f"/tables/in.c-main.t/metadata/{user_id}").status_code == 204
    # an untyped table keeps its behaviour: provider storage is accepted there
    api.create_table(bucket, "plain", "id\n1\n")
    resp = api.post(
        "/tables/in.c-main.plain/metadata", json={"provider": "storage", "metadata": [{"key": "k", "value": "v"}]}
    )
    assert resp.status_code == 200


def test_columns_without_types_make_an_untyped_table(api):
    """APIB: no column.definition.type nor column.basetype -> a non-typed table (PHPT
    testDataPreviewForTableDefinitionWithoutDefinitionAndBaseType): values load as they are."""
    bucket = api.create_bucket("main")
    table = defined(
        api,
        bucket,
        {"name": "plain", "primaryKeysNames": ["id"], "columns": [{"name": "id"}, {"name": "value", "definition": {}}]},
    )
    assert table["isTyped"] is False
    assert "definition" not in table
    assert table["metadata"] == [] and table["columnMetadata"] == []
    assert (table["columns"], table["primaryKey"]) == (["id", "value"], ["id"])
    job = api.import_csv("in.c-main.plain", "id,value\n1,003.123\n2,\n")
    assert job["status"] == "success", job
    assert sorted(api.preview_rows("in.c-main.plain"), key=lambda r: r["id"]) == [
        {"id": "1", "value": "003.123"},
        {"id": "2", "value": ""},
    ]
    # an untyped table refuses typed columns, as one from tables-async does
    resp = api.post("/tables/in.c-main.plain/columns", json={"name": "x", "definition": {"type": "VARCHAR"}})
    assert resp.status_code == 400
    assert resp.json()["error"] == "Invalid parameters - definition: This field was not expected."


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        # PHPT testTableWithDot
        (
            {"name": "nameWith.Dot", "columns": [{"name": "id", "definition": {"type": "INT"}}]},
            "storage.tables.validation",
            None,
        ),
        ({"columns": [{"name": "id", "basetype": "INTEGER"}]}, "storage.tables.validation", "name"),
        ({"name": "t", "columns": []}, "storage.tables.validation", "columns"),
        ({"name": "t", "columns": [{"basetype": "STRING"}]}, "storage.tables.validation", "columns[0][name]"),
        # a nullable primary key column (MIG StorageModifier::createTypedTable)
        (
            {
                "name": "t",
                "primaryKeysNames": ["id"],
                "columns": [{"name": "id", "definition": {"type": "INT", "nullable": True}}],
            },
            "storage.tables.validation",
            "Primary keys columns must be set nullable false",
        ),
        (
            {"name": "t", "primaryKeysNames": ["nope"], "columns": [{"name": "id", "basetype": "INTEGER"}]},
            "storage.tables.validation.invalidPrimaryKeyColumns",
            "nope",
        ),
        (
            {"name": "t", "columns": [{"name": "id", "definition": {"type": "NOPE"}}]},
            "storage.tables.validation",
            "NOPE",
        ),
        ({"name": "t", "columns": [{"name": "id", "basetype": "MONEY"}]}, "storage.tables.validation", "MONEY"),
        (
            {"name": "t", "columns": [{"name": "id", "definition": {"type": "NUMBER", "length": "39,0"}}]},
            "storage.tables.validation",
            "'39,0' is not valid length for NUMBER",
        ),
        (
            {"name": "t", "columns": [{"name": "id", "definition": {"type": "INT", "length": "10"}}]},
            "storage.tables.validation",
            "length",
        ),
        (
            {"name": "t", "columns": [{"name": "id", "definition": {"type": "BOOLEAN", "length": "1"}}]},
            "storage.tables.validation",
            "length",
        ),
        (
            {"name": "t", "columns": [{"name": "id", "definition": {"type": "VARCHAR", "nullable": "yes"}}]},
            "storage.tables.validation",
            "nullable",
        ),
        # typed and untyped columns mixed
        (
            {"name": "t", "columns": [{"name": "id", "basetype": "INTEGER"}, {"name": "name"}]},
            "storage.tables.validation",
            'Column "name" has no data type',
        ),
        (
            {"name": "t", "columns": [{"name": "id", "basetype": "INTEGER"}, {"name": "ID", "basetype": "STRING"}]},
            "storage.tables.validation.duplicateColumn",
            None,
        ),
        (
            {"name": "t", "columns": [{"name": "a b", "basetype": "STRING"}]},
            "storage.tables.validation.invalidColumnName",
            None,
        ),
        (
            {"name": "t", "columns": [{"name": "_timestamp", "basetype": "STRING"}]},
            "storage.tables.validation.invalidColumnName",
            None,
        ),
        # BigQuery options on a Snowflake bucket
        (
            {"name": "t", "columns": [{"name": "id", "basetype": "INTEGER"}], "clustering": {"fields": ["id"]}},
            "storage.tables.validation",
            "bigquery",
        ),
        (
            {"name": "t", "columns": [{"name": "id", "basetype": "INTEGER"}], "timestampType": "NONE"},
            "storage.tables.validation",
            None,
        ),
    ],
)
def test_definition_request_errors(api, body, code, message):
    bucket = api.create_bucket("main")
    resp = api.post(f"/buckets/{bucket}/tables-definition", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code
    if message is not None:
        assert message in resp.json()["error"]
    assert api.get("/tables").json() == []


def test_existing_name_and_permissions(api, emu, project):
    bucket = api.create_bucket("main")
    body = {"name": "t", "columns": [{"name": "id", "basetype": "INTEGER"}]}
    defined(api, bucket, body)
    resp = api.post(f"/buckets/{bucket}/tables-definition", json=body)
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.buckets.tableAlreadyExists"
    reader = api.with_token(emu.create_token(project.id, bucket_permissions={bucket: "read"}))
    assert reader.post(f"/buckets/{bucket}/tables-definition", json={**body, "name": "u"}).status_code == 403
    assert api.post("/buckets/in.c-nope/tables-definition", json=body).status_code == 404


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        # PHPT Snowflake testCreateTableDefaults
        ({"type": "NUMBER", "default": "string"}, "Table creation ended with a syntax exception"),
        ({"type": "INT", "default": "string"}, "Table creation ended with a syntax exception"),
        ({"type": "BOOLEAN", "default": "test"}, 'Boolean default value "test" is not boolean.'),
        ({"type": "BOOLEAN", "default": 123}, 'Boolean default value "123" is not boolean.'),
        ({"type": "DATE", "default": "'2022-02-22'"}, "Table creation ended with a syntax exception"),
        ({"type": "TIMESTAMP", "default": "'2021-01-01 00:00:00'"}, "Table creation ended with a syntax exception"),
        ({"type": "TIMESTAMP", "default": "string"}, "Table creation ended with a syntax exception"),
    ],
)
def test_bad_defaults_fail_the_job(api, definition, message):
    bucket = api.create_bucket("main")
    job = define(api, bucket, {"name": "t", "columns": [{"name": "c", "definition": definition}]})
    assert job["status"] == "error"
    assert job["error"]["message"].startswith(message)
    assert api.get("/tables").json() == []


@pytest.mark.parametrize(
    "definition",
    [
        {"type": "NUMBER", "default": "1.23"},
        {"type": "INT", "default": 1},
        {"type": "NUMBER", "default": ""},
        {"type": "BOOLEAN", "default": True},
        {"type": "BOOLEAN", "default": "false"},
        {"type": "VARCHAR", "default": "test"},
        {"type": "VARCHAR", "default": "'test'"},
        {"type": "DATE", "default": "2022-02-22"},
        {"type": "TIMESTAMP", "default": "current_timestamp()"},
        {"type": "TIMESTAMP", "default": "2021-01-01 00:00:00"},
        {"type": "TIME", "default": "00:00:00"},
    ],
)
def test_good_defaults(api, definition):
    bucket = api.create_bucket("main")
    table = defined(api, bucket, {"name": "t", "columns": [{"name": "c", "definition": definition}]})
    column = table["definition"]["columns"][0]["definition"]
    if definition["default"] == "":
        assert "default" not in column
    else:
        sent = definition["default"]
        assert column["default"] == ("true" if sent is True else str(sent))


def test_bigquery_partitioning_and_clustering(bq_api):
    """PHPT Bigquery/TableDefinitionOperationsPartitioningTest: the options come back in the definition; a
    clustering field that is no column fails the job."""
    bucket = bq_api.create_bucket("main")
    columns = [
        {"name": "id", "definition": {"type": "INT64", "nullable": False}},
        {"name": "time", "definition": {"type": "TIMESTAMP", "nullable": False}},
    ]
    table = defined(
        bq_api,
        bucket,
        {
            "name": "my_new_table",
            "primaryKeysNames": ["id"],
            "columns": columns,
            "clustering": {"fields": ["id"]},
            "timePartitioning": {"type": "DAY", "field": "time", "expirationMs": 1000},
        },
    )
    assert table["definition"] == {
        "primaryKeysNames": ["id"],
        "columns": [
            {
                "name": "id",
                "definition": {"type": "INTEGER", "nullable": False},
                "basetype": "INTEGER",
                "canBeFiltered": True,
            },
            {
                "name": "time",
                "definition": {"type": "TIMESTAMP", "nullable": False},
                "basetype": "TIMESTAMP",
                "canBeFiltered": True,
            },
        ],
        "timePartitioning": {"type": "DAY", "field": "time", "expirationMs": "1000"},
        "clustering": {"fields": ["id"]},
        "requirePartitionFilter": False,
        "partitions": [],
    }
    job = define(bq_api, bucket, {"name": "other", "columns": columns, "clustering": {"fields": ["not exists"]}})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.tables.validation"
    assert job["error"]["message"] == (
        'Failed to create table "other" in dataset "in_c_main". Exception: The field specified for clustering cannot '
        "be found in the schema."
    )


# -- backends ----------------------------------------------------------------------------------------------------------
def test_project_default_backend_and_bucket_backend(emu, s3_env):
    """tokens/verify owner.defaultBackend / assignedBackends / hasBigquery; a bucket is created on the default
    backend or on the one asked for (one of the assigned ones)."""
    both = Api(emu.url, emu.create_project("both", backends=("snowflake", "bigquery")).token)
    owner = both.get("/tokens/verify").json()["owner"]
    assert (owner["defaultBackend"], owner["assignedBackends"]) == ("snowflake", ["snowflake", "bigquery"])
    assert (owner["hasSnowflake"], owner["hasBigquery"]) == (True, True)
    resp = both.post("/buckets", json={"name": "bq", "backend": "bigquery"})
    assert resp.status_code == 201
    assert resp.json()["backend"] == "bigquery"
    assert both.get("/buckets/in.c-bq").json()["backend"] == "bigquery"
    assert both.post("/buckets", json={"name": "sf"}).json()["backend"] == "snowflake"
    assert {b["id"]: b["backend"] for b in both.get("/buckets").json()} == {
        "in.c-bq": "bigquery",
        "in.c-sf": "snowflake",
    }

    bq = Api(emu.url, emu.create_project("bq", default_backend="bigquery").token)
    owner = bq.get("/tokens/verify").json()["owner"]
    assert (owner["defaultBackend"], owner["assignedBackends"], owner["hasSnowflake"]) == (
        "bigquery",
        ["bigquery"],
        False,
    )
    assert bq.post("/buckets", json={"name": "x"}).json()["backend"] == "bigquery"
    resp = bq.post("/buckets", json={"name": "y", "backend": "snowflake"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.buckets.validation"
    assert resp.json()["error"] == 'Backend "snowflake" is not assigned to the project. Assigned backends: bigquery.'
    assert bq.post("/buckets", json={"name": "z", "backend": "redshift"}).status_code == 400


def test_default_project_is_snowflake_only(api):
    owner = api.get("/tokens/verify").json()["owner"]
    assert (owner["defaultBackend"], owner["assignedBackends"], owner["hasBigquery"]) == (
        "snowflake",
        ["snowflake"],
        False,
    )


# -- Python API ----------------------------------------------------------------------------------------------------------
def test_python_api_typed_tables(emu):
    project = emu.create_project("python-typed", backends=("snowflake", "bigquery"))
    assert emu.create_bucket(project.id, "bq", backend="bigquery") == "in.c-bq"
    emu.create_bucket(project.id, "sf")
    detail = emu.create_typed_table(
        project.id,
        "in.c-sf.orders",
        columns=[
            {"name": "id", "definition": {"type": "NUMBER", "length": "10,0"}},
            {"name": "amount", "basetype": "NUMERIC"},
            {"name": "note", "basetype": "STRING"},
        ],
        primary_key=["id"],
        rows_csv="id,amount,note\n1,1.5,\n2,,x\n",
    )
    assert detail["isTyped"] is True and detail["rowsCount"] == 2
    assert sorted(emu.table_rows(project.id, "in.c-sf.orders"), key=lambda r: r["id"]) == [
        {"id": "1", "amount": "1.500000000", "note": None},
        {"id": "2", "amount": None, "note": "x"},
    ]
    bq = emu.create_typed_table(project.id, "in.c-bq.t", columns=[{"name": "n", "basetype": "NUMERIC"}])
    assert bq["definition"]["columns"][0]["definition"] == {"type": "NUMERIC", "nullable": True}
    emu.load_table(project.id, "in.c-bq.t", "n\n1.50\n")
    assert emu.table_rows(project.id, "in.c-bq.t") == [{"n": "1.5"}]
    from emulator.errors import ValidationError

    with pytest.raises(ValidationError) as caught:
        emu.load_table(project.id, "in.c-sf.orders", "id,amount,note\nx,1,a\n")
    assert caught.value.message.endswith("Numeric value 'x' is not recognized")
    with pytest.raises(ValidationError):
        emu.create_typed_table(project.id, "in.c-sf.bad", columns=[{"name": "id", "basetype": "MONEY"}])
    with pytest.raises(ValueError):
        emu.create_project("nope", default_backend="redshift")

"""URL map of the emulated Storage API: werkzeug rules -> endpoint names (handlers in ``responses.py``).

Ids of buckets and tables contain dots (``in.c-main.table``), never slashes, so the default converter fits.
"""

from __future__ import annotations

from werkzeug.routing import Map, Rule

PREFIX = "/v2/storage"

_RULES = [
    ("/tokens/verify", ["GET"], "verify_token"),
    ("/buckets", ["GET"], "list_buckets"),
    ("/buckets", ["POST"], "create_bucket"),
    ("/buckets/<bucket_id>", ["GET"], "get_bucket"),
    ("/buckets/<bucket_id>", ["DELETE"], "delete_bucket"),
    ("/buckets/<bucket_id>/tables", ["GET"], "list_bucket_tables"),
    ("/buckets/<bucket_id>/tables-async", ["POST"], "create_table_async"),
    ("/tables", ["GET"], "list_tables"),
    ("/tables/<table_id>", ["GET"], "get_table"),
    ("/tables/<table_id>", ["DELETE"], "delete_table"),
    ("/tables/<table_id>/import-async", ["POST"], "import_async"),
    ("/tables/<table_id>/export-async", ["POST"], "export_async"),
    ("/tables/<table_id>/data-preview", ["GET"], "data_preview"),
    ("/tables/<table_id>/primary-key", ["POST"], "add_primary_key"),
    ("/tables/<table_id>/primary-key", ["DELETE"], "remove_primary_key"),
    ("/tables/<table_id>/rows", ["DELETE"], "delete_rows"),
    ("/tables/<table_id>/columns", ["POST"], "add_column"),
    ("/tables/<table_id>/columns/<column>", ["DELETE"], "delete_column"),
    ("/tables/<table_id>/metadata", ["GET"], "list_table_metadata"),
    ("/tables/<table_id>/metadata", ["POST"], "post_table_metadata"),
    ("/tables/<table_id>/metadata/<metadata_id>", ["DELETE"], "delete_table_metadata"),
    ("/files/prepare", ["POST"], "prepare_file"),
    ("/files", ["GET"], "list_files"),
    ("/files/<file_id>", ["GET"], "get_file"),
    ("/files/<file_id>", ["DELETE"], "delete_file"),
    ("/files/<file_id>/refresh", ["PUT"], "refresh_file"),
    ("/jobs", ["GET"], "list_jobs"),
    ("/jobs/<job_id>", ["GET"], "get_job"),
]


def build_url_map() -> Map:
    # strict_slashes=False: "/buckets/in.c-x/" (APIB writes some paths with a trailing slash) hits the same rule
    # instead of a 308 redirect.
    return Map(
        [
            Rule(PREFIX + path, methods=methods, endpoint=endpoint, strict_slashes=False)
            for path, methods, endpoint in _RULES
        ]
    )


ENDPOINTS = sorted({endpoint for _path, _methods, endpoint in _RULES})

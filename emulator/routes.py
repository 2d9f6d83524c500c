"""The one route table of the emulated Storage API: URL, method, handler (``responses.py``) and the permission level
the token needs on the bucket or table of the URL.

The server checks ``access`` on the URL's ``bucket_id`` / ``table_id`` before the handler decodes the request, so a
missing or forbidden bucket / table answers 404 / 403 before a malformed parameter answers 400. The models check
the permissions again (they are also called by the Python API).

Ids of buckets and tables contain dots (``in.c-main.table``), never slashes, so the default converter fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.routing import Map, Rule

from . import responses as r

PREFIX = "/v2/storage"
CONTROL_PREFIX = "/_emulator"  # test-harness endpoints: no token, no maintenance, no faults


@dataclass(frozen=True)
class Route:
    path: str
    method: str
    handler: Callable
    access: str | None = None  # "read" | "write" | "manage" on the URL's bucket / table


READ, WRITE, MANAGE = "read", "write", "manage"

API_ROUTES = [
    Route("/tokens/verify", "GET", r.verify_token),
    Route("/buckets", "GET", r.list_buckets),
    Route("/buckets", "POST", r.create_bucket),
    Route("/buckets/<bucket_id>", "GET", r.get_bucket, READ),
    Route("/buckets/<bucket_id>", "DELETE", r.delete_bucket, MANAGE),
    Route("/buckets/<bucket_id>/tables", "GET", r.list_bucket_tables, READ),
    Route("/buckets/<bucket_id>/tables-async", "POST", r.create_table_async, WRITE),
    Route("/buckets/<bucket_id>/tables-definition", "POST", r.create_table_definition, WRITE),
    Route("/buckets/<bucket_id>/table-aliases", "POST", r.create_table_alias, WRITE),
    Route("/tables", "GET", r.list_tables),
    Route("/tables/<table_id>", "GET", r.get_table, READ),
    Route("/tables/<table_id>", "DELETE", r.delete_table, WRITE),
    Route("/tables/<table_id>/import-async", "POST", r.import_async, WRITE),
    Route("/tables/<table_id>/export-async", "POST", r.export_async, READ),
    Route("/tables/<table_id>/data-preview", "GET", r.data_preview, READ),
    Route("/tables/<table_id>/primary-key", "POST", r.add_primary_key, WRITE),
    Route("/tables/<table_id>/primary-key", "DELETE", r.remove_primary_key, WRITE),
    Route("/tables/<table_id>/rows", "DELETE", r.delete_rows, WRITE),
    Route("/tables/<table_id>/columns", "POST", r.add_column, WRITE),
    Route("/tables/<table_id>/columns/<column>", "DELETE", r.delete_column, WRITE),
    Route("/tables/<table_id>/alias-filter", "POST", r.set_alias_filter, WRITE),
    Route("/tables/<table_id>/alias-filter", "DELETE", r.remove_alias_filter, WRITE),
    Route("/tables/<table_id>/alias-columns-auto-sync", "POST", r.enable_alias_columns_auto_sync, WRITE),
    Route("/tables/<table_id>/alias-columns-auto-sync", "DELETE", r.disable_alias_columns_auto_sync, WRITE),
    Route("/tables/<table_id>/metadata", "GET", r.list_table_metadata, READ),
    Route("/tables/<table_id>/metadata", "POST", r.post_table_metadata, WRITE),
    Route("/tables/<table_id>/metadata/<metadata_id>", "DELETE", r.delete_table_metadata, WRITE),
    Route("/files/prepare", "POST", r.prepare_file),
    Route("/files", "GET", r.list_files),
    Route("/files/<file_id>", "GET", r.get_file),
    Route("/files/<file_id>", "DELETE", r.delete_file),
    Route("/files/<file_id>/refresh", "PUT", r.refresh_file),
    Route("/jobs", "GET", r.list_jobs),
    Route("/jobs/<job_id>", "GET", r.get_job),
]

# plain path only (dev branches are project-wide)
DEV_BRANCH_ROUTES = [
    Route("/dev-branches", "GET", r.list_dev_branches),
    Route("/dev-branches", "POST", r.create_dev_branch),
    Route("/dev-branches/<branch_id>", "GET", r.get_dev_branch),
    Route("/dev-branches/<branch_id>", "DELETE", r.delete_dev_branch),
]

# ``/v2/storage/branch/{branchId|default}/...``: every API route but jobs and ``.../alias-filter`` ("filtered aliases
# are deprecated and not supported in branches", PHP BranchAwareClient; addendum §3). The server passes the
# ``branch`` argument to the models as the request's branch (``models.BRANCH``).
BRANCH_PREFIX = PREFIX + "/branch/<branch>"


def branch_scoped(route: Route) -> bool:
    return not route.path.startswith("/jobs") and not route.path.endswith("/alias-filter")


CONTROL_ROUTES = [
    Route("/clock", "GET", r.get_clock),
    Route("/clock", "POST", r.advance_clock),
]


def _map(prefix: str, routes: list[Route]) -> Map:
    # strict_slashes=False: "/buckets/in.c-x/" (APIB writes some paths with a trailing slash) hits the same rule
    # instead of a 308 redirect.
    return Map(
        [Rule(prefix + route.path, methods=[route.method], endpoint=route, strict_slashes=False) for route in routes]
    )


def build_url_map() -> Map:
    plain = _map(PREFIX, API_ROUTES + DEV_BRANCH_ROUTES)
    for rule in _map(BRANCH_PREFIX, [route for route in API_ROUTES if branch_scoped(route)]).iter_rules():
        plain.add(rule.empty())
    return plain


def build_control_map() -> Map:
    return _map(CONTROL_PREFIX, CONTROL_ROUTES)

"""Which project a connection reaches: a stack (its URL, normalised) and the token's project id."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def stack_key(url: str) -> str:
    """The stack a URL reaches, spelled one way: lower-case host, loopback names as one, default port dropped."""
    parts = urlsplit(url if "//" in url else f"https://{url}")
    host = (parts.hostname or "").lower().rstrip(".")
    if _is_loopback(host):
        host = "loopback"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{port}"


def project_key(url: str, project_id: Any) -> str:
    return f"{stack_key(url)}#{project_id}"


def same_project(
    source_url: str, source_token: Mapping[str, Any], destination_url: str, destination_token: Mapping[str, Any]
) -> bool:
    """Whether two ``tokens/verify`` answers are of one project: the same project id on the same stack, or the same
    project id and creation time (one stack reached by two names)."""
    source_owner = source_token.get("owner") or {}
    destination_owner = destination_token.get("owner") or {}
    if str(source_owner.get("id")) != str(destination_owner.get("id")):
        return False
    if stack_key(source_url) == stack_key(destination_url):
        return True
    created = source_owner.get("created")
    return created is not None and created == destination_owner.get("created")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

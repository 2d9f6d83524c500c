"""Projects, tokens and permissions: master and limited tokens, bucketPermissions levels, tokens/verify."""

from __future__ import annotations

import secrets
import string

from ..errors import AccessDenied, InvalidToken, MissingToken
from ..types import BACKENDS, BIGQUERY, SNOWFLAKE
from .entities import Project, Token
from .helpers import fmt_time, php_map

LEVELS = {"read": 1, "write": 2, "manage": 3}


class TokensMixin:
    def create_project(
        self, name: str, *, default_backend: str = SNOWFLAKE, backends: list[str] | tuple[str, ...] | None = None
    ) -> tuple[Project, Token]:
        """``default_backend``: the backend of buckets created without one; ``backends``: the assigned backends
        (default: just ``default_backend``), the ones a bucket may be created on."""
        assigned = list(dict.fromkeys(backends or [default_backend]))
        for backend in [default_backend, *assigned]:
            if backend not in BACKENDS:
                raise ValueError(f'backend must be one of {", ".join(BACKENDS)}, not "{backend}"')
        if default_backend not in assigned:
            raise ValueError(f'the default backend "{default_backend}" is not among the assigned backends {assigned}')
        with self.lock:
            project = Project(
                id=self._next("project"),
                name=name,
                created=self.now(),
                default_backend=default_backend,
                backends=assigned,
            )
            self.projects[project.id] = project
            self._add_default_branch(project)
            master = self._new_token(
                project,
                description="Master Token",
                is_master=True,
                can_manage_buckets=True,
                can_manage_tokens=True,
                can_read_all_file_uploads=True,
                bucket_permissions={},
                creator=None,
            )
            return project, master

    def _new_token(self, project: Project, **kwargs) -> Token:
        token_id = self._next("token")
        alphabet = string.ascii_letters + string.digits
        secret = f"{project.id}-{token_id}-" + "".join(secrets.choice(alphabet) for _ in range(40))
        token = Token(id=token_id, project_id=project.id, secret=secret, created=self.now(), **kwargs)
        self.tokens[secret] = token
        self.tokens_by_id[token_id] = token
        return token

    def create_token(
        self,
        project_id: int,
        *,
        bucket_permissions: dict[str, str] | None = None,
        can_manage_buckets: bool = False,
        can_manage_tokens: bool = False,
        can_read_all_file_uploads: bool = False,
        description: str = "",
    ) -> Token:
        perms = dict(bucket_permissions or {})
        for bucket_id, level in perms.items():
            if level not in LEVELS:
                raise ValueError(f'bucket permission for "{bucket_id}" must be read, write or manage, not "{level}"')
        with self.lock:
            project = self._project(project_id)
            master = next(t for t in self.tokens_by_id.values() if t.project_id == project.id and t.is_master)
            return self._new_token(
                project,
                description=description,
                is_master=False,
                can_manage_buckets=can_manage_buckets,
                can_manage_tokens=can_manage_tokens,
                can_read_all_file_uploads=can_read_all_file_uploads,
                bucket_permissions=perms,
                creator=master.ref(),
            )

    def revoke_token(self, secret: str) -> None:
        with self.lock:
            token = self.tokens.get(secret)
            if token is None:
                raise KeyError("unknown token")
            token.revoked = True

    def _project(self, project_id: int) -> Project:
        project = self.projects.get(int(project_id))
        if project is None:
            raise KeyError(f"unknown project {project_id}")
        return project

    def master_token(self, project_id: int) -> Token:
        with self.lock:
            return next(t for t in self.tokens_by_id.values() if t.project_id == int(project_id) and t.is_master)

    def authenticate(self, secret: str | None) -> Token:
        if not secret:
            raise MissingToken()
        token = self.tokens.get(secret)
        if token is None or token.revoked:
            raise InvalidToken()
        return token

    def verify_token(self, token: Token) -> dict:
        with self.lock:
            project = self.projects[token.project_id]
            return self._token_json(token, project)

    def _token_json(self, token: Token, project: Project) -> dict:
        perms = self._effective_permissions(token, project)
        rows, size = self._project_totals(project)
        data = {
            "id": str(token.id),
            "token": token.secret,
            "created": fmt_time(token.created),
            "refreshed": fmt_time(token.created),
            "description": token.description,
            "uri": f"{self.base_url}/v2/storage/tokens/{token.id}",
            "isMasterToken": token.is_master,
            "canManageBuckets": token.is_master or token.can_manage_buckets,
            "canManageTokens": token.is_master or token.can_manage_tokens,
            "canReadAllFileUploads": token.is_master or token.can_read_all_file_uploads,
            "canPurgeTrash": token.is_master,
            "canManageProtectedDefaultBranch": False,
            "canCreateJobs": False,
            "expires": None,
            "isExpired": False,
            "isDisabled": False,
            "isBYODB": False,
            "dailyCapacity": 0,
            "bucketPermissions": php_map(perms),
            "creatorToken": token.creator if token.creator else token.ref(),
            "componentAccess": [],
            "organization": {"id": 1},
            "owner": {
                "id": project.id,
                "name": project.name,
                "type": "production",
                "region": self.region,
                "created": fmt_time(project.created),
                "expires": None,
                "features": list(project.features),
                "dataSizeBytes": size,
                "rowsCount": rows,
                "hasMysql": False,
                "hasSynapse": False,
                "hasRedshift": False,
                "hasSnowflake": SNOWFLAKE in project.backends,
                "hasExasol": False,
                "hasTeradata": False,
                "hasBigquery": BIGQUERY in project.backends,
                "defaultBackend": project.default_backend,
                "hasTryModeOn": "0",
                "limits": {
                    "components.jobsParallelism": {"name": "components.jobsParallelism", "value": 10},
                    "kbc.adminsCount": {"name": "kbc.adminsCount", "value": 10},
                    "storage.dataSizeBytes": {"name": "storage.dataSizeBytes", "value": 50000000000},
                    "storage.jobsParallelism": {
                        "name": "storage.jobsParallelism",
                        "value": self.runner.project_parallelism(project.id),
                    },
                },
                "metrics": {
                    "storage.dataSizeBytes": {"name": "storage.dataSizeBytes", "value": size},
                    "storage.rowsCount": {"name": "storage.rowsCount", "value": rows},
                },
                "isDisabled": False,
                "billedMonthlyPrice": None,
                "dataRetentionTimeInDays": 7,
                "assignedBackends": list(project.backends),
                "fileStorageProvider": self.storage.provider,
            },
        }
        if token.is_master:
            data["admin"] = {
                "id": 1,
                "name": "Emulator Admin",
                "features": [],
                "isOrganizationMember": True,
                "role": "admin",
            }
        return data

    def _project_totals(self, project: Project) -> tuple[int, int]:
        rows = size = 0
        for bucket in project.buckets.values():
            for table in bucket.tables.values():
                rows += table.rows_count
                size += table.data_size_bytes
        return rows, size

    def _effective_permissions(self, token: Token, project: Project) -> dict[str, str]:
        if token.is_master:
            return {bucket_id: "manage" for bucket_id in project.buckets}
        return {b: p for b, p in token.bucket_permissions.items() if b in project.buckets}

    @staticmethod
    def _level(token: Token, bucket_id: str) -> int:
        if token.is_master:
            return LEVELS["manage"]
        return LEVELS.get(token.bucket_permissions.get(bucket_id, ""), 0)

    def _require(self, token: Token, bucket_id: str, level: str) -> None:
        if self._level(token, bucket_id) < LEVELS[level]:
            if self._level(token, bucket_id) == 0:
                raise AccessDenied(f'You don\'t have access to the bucket "{bucket_id}".')
            raise AccessDenied(
                f'You don\'t have permission to {"modify" if level == "write" else "manage"} the bucket "{bucket_id}".'
            )

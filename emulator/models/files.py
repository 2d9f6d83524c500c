"""Files: prepare (upload parameters), detail with federation credentials, list filters, delete, refresh."""

from __future__ import annotations

from ..errors import AccessDenied, FileNotFound, ValidationError
from .entities import Project, StoredFile, Token
from .helpers import fmt_time, sanitize_file_name

UPLOAD_MAX_AGE_DAYS = 15
FILES_DEFAULT_LIMIT = 100


class FilesMixin:
    def _new_file(
        self,
        project: Project,
        token: Token,
        *,
        name: str,
        sliced: bool,
        encrypted: bool,
        permanent: bool,
        public: bool,
        tags: list[str],
        run_id: str | None,
        max_age_days: int | None,
        key_prefix: str | None = None,
        declared_size: int | None = None,
        register: bool = True,
    ) -> StoredFile:
        file_id = self._next("file")
        now = self.now()
        safe_name = sanitize_file_name(name)
        if key_prefix is None:
            exp = f"exp-{max_age_days}" if max_age_days else "permanent"
            key_prefix = f"{exp}/{project.id}/files/{now:%Y/%m/%d}"
        file = StoredFile(
            id=file_id,
            project_id=project.id,
            name=safe_name,
            key=f"{key_prefix}/{file_id}.{safe_name}",
            created=now,
            is_sliced=sliced,
            is_encrypted=encrypted,
            is_permanent=permanent,
            is_public=public,
            tags=list(tags),
            max_age_days=max_age_days,
            run_id=run_id,
            run_ids=[run_id] if run_id else [],
            creator_token=token.ref(),
            creator_token_id=token.id,
            declared_size=declared_size,
        )
        if register:
            with self.lock:
                project.files[file_id] = file
        return file

    def file_json(self, file: StoredFile, *, federation: bool = False, upload: bool = False) -> dict:
        data = {
            "id": file.id,
            "created": fmt_time(file.created),
            "isPublic": file.is_public,
            "isSliced": file.is_sliced,
            "isEncrypted": file.is_encrypted,
            "name": file.name,
            "url": self.storage.url(file.key, sliced=file.is_sliced),
            "provider": self.storage.provider,
            "region": self.region,
            "sizeBytes": self._file_size(file),
            "tags": list(file.tags),
            "maxAgeDays": file.max_age_days,
            "runId": file.run_id,
            "runIds": list(file.run_ids),
            "creatorToken": dict(file.creator_token),
        }
        if file.file_type:
            data["fileType"] = file.file_type
        if upload:
            data.update(
                self.storage.prepare_block(file.key, name=file.name, sliced=file.is_sliced, encrypted=file.is_encrypted)
            )
        elif federation:
            data.update(self.storage.detail_block(file.key, sliced=file.is_sliced))
        return data

    def _file_size(self, file: StoredFile) -> int | None:
        if file.size_bytes is not None:
            return file.size_bytes
        if not file.is_sliced:
            size = self.storage.size(file.key)
            if size is not None:
                return size
        return file.declared_size

    def prepare_file(
        self,
        token: Token,
        *,
        name: str,
        tags: list[str] = (),
        size_bytes: int | None = None,
        sliced: bool = False,
        encrypted: bool = True,
        permanent: bool = False,
        run_id=None,
    ) -> dict:
        if self.storage.provider != "aws":
            encrypted = True  # azure and gcp files are always encrypted (APIB)
        with self.lock:
            project = self.projects[token.project_id]
        file = self._new_file(
            project,
            token,
            name=name,
            sliced=sliced,
            encrypted=encrypted,
            permanent=permanent,
            public=False,
            tags=list(tags),
            run_id=run_id,
            max_age_days=None if permanent else UPLOAD_MAX_AGE_DAYS,
            declared_size=size_bytes,
        )
        return self.file_json(file, upload=True)

    def _visible_file(self, token: Token, file_id) -> StoredFile:
        try:
            fid = int(file_id)
        except (TypeError, ValueError):
            raise FileNotFound(file_id) from None
        with self.lock:
            file = self.projects[token.project_id].files.get(fid)
            if file is None or file.deleted:
                raise FileNotFound(file_id)
            if not (token.is_master or token.can_read_all_file_uploads or file.creator_token_id == token.id):
                raise AccessDenied(f'You don\'t have access to the file "{fid}".')
            return file

    def get_file(self, token: Token, file_id, *, federation: bool = False) -> dict:
        return self.file_json(self._visible_file(token, file_id), federation=federation)

    def list_files(
        self,
        token: Token,
        *,
        limit: int = FILES_DEFAULT_LIMIT,
        offset: int = 0,
        tags: list[str] = (),
        run_id: str | None = None,
        since_id: int | None = None,
        max_id: int | None = None,
    ) -> list[dict]:
        with self.lock:
            files = [
                f
                for f in self.projects[token.project_id].files.values()
                if not f.deleted
                and (token.is_master or token.can_read_all_file_uploads or f.creator_token_id == token.id)
                and all(t in f.tags for t in tags)
                and (not run_id or run_id == f.run_id or run_id in f.run_ids)
                and (since_id is None or f.id > since_id)
                and (max_id is None or f.id <= max_id)
            ]
        files.sort(key=lambda f: f.id, reverse=True)
        return [self.file_json(f) for f in files[offset : offset + limit]]

    def delete_file(self, token: Token, file_id) -> None:
        file = self._visible_file(token, file_id)
        with self.lock:
            file.deleted = True

    def refresh_file(self, token: Token, file_id) -> dict:
        file = self._visible_file(token, file_id)
        if self.storage.provider != "gcp":
            raise ValidationError(
                "Refreshing file credentials is supported only for GCP file storage.",
                code="storage.files.validation",
            )
        data = self.file_json(file, upload=True)
        data.update(self.storage.detail_block(file.key, sliced=file.is_sliced))  # fresh download token too
        return data

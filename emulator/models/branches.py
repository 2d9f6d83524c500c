"""Development branches (addendum §3): ``dev-branches`` (list, detail, create / delete jobs) and the branch of a
``/v2/storage/branch/{branchId|default}/...`` request.

Every project has a default branch (``isDefault: true``, listed first); its storage is production. What a dev branch
stores depends on the project's features, as on real stacks:

- branched storage (``storage-branches`` or ``protected-default-branch`` in ``owner.features``): the branch has its
  own buckets, tables and files under the same ids as production; a branch read of a production-only table is 404,
  another branch's file is 404 ``File not found.``;
- the legacy prefix model (no feature): branch paths read and write production (branch data lives there as
  ``in.c-{branchId}-name`` buckets, which the client names itself); only ``branch/{id}/buckets`` lists nothing.
"""

from __future__ import annotations

from ..errors import NotFound, ValidationError
from .entities import BRANCH, DevBranch, Namespace, Project, Token


class BranchNotFound(NotFound):
    code = "storage.devBranch.notFound"

    def __init__(self, branch_id):
        super().__init__(f"Branch {branch_id} not found", code=self.code)


class BranchesMixin:
    def _add_default_branch(self, project: Project) -> None:
        branch = DevBranch(
            id=self._next("branch"),
            name="Main",
            description="",
            created=project.created,
            is_default=True,
            creator_token={},
        )
        project.branches[branch.id] = branch

    def resolve_branch(self, token: Token, ref: str) -> int | None:
        """The branch of a ``branch/{ref}/`` URL: None for ``default`` and the default branch's id, else the id of a
        dev branch of the token's project (404 otherwise)."""
        if ref == "default":
            return None
        with self.lock:
            project = self.projects[token.project_id]
            try:
                branch = project.branches.get(int(ref))
            except ValueError:
                branch = None
            if branch is None:
                raise BranchNotFound(ref)
            return None if branch.is_default else branch.id

    def list_branches(self, token: Token) -> list[dict]:
        with self.lock:
            return [b.json() for b in self.projects[token.project_id].branches.values()]

    def get_branch(self, token: Token, branch_id) -> dict:
        with self.lock:
            return self._branch(token, branch_id).json()

    def _branch(self, token: Token, branch_id) -> DevBranch:
        project = self.projects[token.project_id]
        try:
            branch = project.branches.get(int(branch_id))
        except (TypeError, ValueError):
            branch = None
        if branch is None:
            raise BranchNotFound(branch_id)
        return branch

    def create_branch(self, token: Token, name: str, description: str = "", run_id: str | None = None) -> dict:
        """``POST dev-branches``: job ``devBranchCreate``, ``results`` = the branch."""
        name = (name or "").strip()
        if not name:
            raise ValidationError("Invalid request: name: This value should not be blank.", code="validation.failed")
        with self.lock:
            project = self.projects[token.project_id]
            if any(b.name == name for b in project.branches.values()):
                raise ValidationError(
                    f'There already is a branch with name "{name}"', code="storage.devBranches.alreadyExists"
                )
        job = self._new_job(
            token, "devBranchCreate", None, {"values": {"name": name, "description": description}}, run_id
        )

        def work(_job):
            with self.lock:
                branch = DevBranch(
                    id=self._next("branch"),
                    name=name,
                    description=description or "",
                    created=self.now(),
                    is_default=False,
                    creator_token={"id": token.id, "name": token.description},
                )
                project.branches[branch.id] = branch
                project.spaces[branch.id] = Namespace()
                return branch.json()

        return self._submit(job, work, key=None)

    def delete_branch(self, token: Token, branch_id, run_id: str | None = None) -> dict:
        """``DELETE dev-branches/{id}``: job ``devBranchDelete``; drops the branch's buckets (branched storage)."""
        with self.lock:
            branch = self._branch(token, branch_id)
            if branch.is_default:
                raise ValidationError(
                    "Default branch cannot be deleted.", code="storage.devBranches.cannotDeleteDefault"
                )
            project = self.projects[token.project_id]
        job = self._new_job(token, "devBranchDelete", None, {"branchId": branch.id}, run_id)

        def work(_job):
            with self.lock:
                if project.branches.pop(branch.id, None) is None:
                    raise BranchNotFound(branch.id)
                space = project.spaces.pop(branch.id, None)
            for bucket in space.buckets.values() if space else ():
                for table in bucket.tables.values():
                    self.engine.drop(table.handle)

        return self._submit(job, work, key=None)

    @staticmethod
    def _in_legacy_dev_branch(project: Project) -> bool:
        branch = BRANCH.get()
        return branch is not None and not project.branched_storage and branch in project.branches

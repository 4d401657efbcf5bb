"""Credentials and ACLs on the broker: create, rotate and revoke, without a restart.

SCRAM-SHA-512 credentials are set through the admin API (`AlterUserScramCredentials`) and take
effect on the next authentication; ACLs through `CreateAcls`/`DeleteAcls`, in force at once.
Generated passwords are kept in a credential store (one JSON file per principal, mode 0600,
under the state directory) so `cwn members credentials` can hand them to a member's systems; in
production the store is a mounted Kubernetes Secret or a vault.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from pipeline.kafka import make_admin
from pipeline.security.acl import Grant, member_grants, member_principal, producer_grants
from pipeline.settings import Settings

ITERATIONS = 8192
_TIMEOUT = 30.0


class ProvisionError(RuntimeError):
    """The broker refused a credential or ACL change; the message says which."""


def binding(grant: Grant) -> AclBinding:
    return AclBinding(
        ResourceType[grant.resource.upper()],
        grant.name,
        ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
        grant.principal,
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


@dataclass(frozen=True)
class CredentialStore:
    """Passwords by principal, one file each."""

    directory: Path

    def path(self, principal: str) -> Path:
        return self.directory / f"{principal}.json"

    def get(self, principal: str) -> str | None:
        try:
            return json.loads(self.path(principal).read_text())["password"]
        except FileNotFoundError:
            return None

    def put(self, principal: str, password: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        path = self.path(principal)
        path.write_text(json.dumps({"principal": principal, "password": password}))
        os.chmod(path, 0o600)

    def delete(self, principal: str) -> None:
        self.path(principal).unlink(missing_ok=True)


class Provisioner:
    """Applies principals and their grants through an administrator's admin client."""

    def __init__(self, admin_settings: Settings, store: CredentialStore) -> None:
        self._admin = make_admin(admin_settings)
        self.store = store

    def set_password(self, principal: str, password: str) -> None:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, ITERATIONS)
        upsert = UserScramCredentialUpsertion(principal, info, password.encode())
        for future in self._admin.alter_user_scram_credentials([upsert]).values():
            _result(future, f"setting the password of {principal}")
        self.store.put(principal, password)

    def ensure_user(self, principal: str, rotate: bool = False) -> str:
        """The principal's password, created (or replaced, with `rotate`) on the broker."""
        password = None if rotate else self.store.get(principal)
        if password is None:
            password = secrets.token_urlsafe(32)
        self.set_password(principal, password)
        return password

    def delete_user(self, principal: str) -> None:
        deletion = UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512)
        for future in self._admin.alter_user_scram_credentials([deletion]).values():
            try:
                future.result(_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - already gone is fine
                if "RESOURCE_NOT_FOUND" not in str(exc) and "not found" not in str(exc).lower():
                    raise ProvisionError(f"deleting the credentials of {principal}: {exc}") from None
        self.store.delete(principal)

    def grant(self, grants: Iterable[Grant]) -> int:
        bindings = [binding(g) for g in dict.fromkeys(grants)]
        if not bindings:
            return 0
        for future in self._admin.create_acls(bindings).values():
            _result(future, "creating ACLs")
        return len(bindings)

    def revoke_all(self, principal: str) -> int:
        """Delete every ACL naming `principal`; returns how many there were."""
        filter_ = AclBindingFilter(
            ResourceType.ANY,
            None,
            ResourcePatternType.ANY,
            principal,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        deleted = 0
        for future in self._admin.delete_acls([filter_]).values():
            deleted += len(_result(future, f"deleting the ACLs of {principal}"))
        return deleted

    def provision(self, grants_by_principal: dict[str, list[Grant]]) -> int:
        """Give each principal (bare name) credentials (kept when it has some) and exactly these
        grants, in a few batched admin calls: an import of 1,152 members is one round trip
        per kind of change, not thousands."""
        names = list(grants_by_principal)
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, ITERATIONS)
        passwords = {n: self.store.get(n) or secrets.token_urlsafe(32) for n in names}
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            upserts = [UserScramCredentialUpsertion(n, info, passwords[n].encode()) for n in chunk]
            for future in self._admin.alter_user_scram_credentials(upserts).values():
                _result(future, "setting passwords")
            any_ = (AclOperation.ANY, AclPermissionType.ANY)
            filters = [
                AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{n}", None, *any_)
                for n in chunk
            ]
            for future in self._admin.delete_acls(filters).values():
                _result(future, "replacing ACLs")
            self.grant([g for n in chunk for g in grants_by_principal[n]])
        for name in names:
            self.store.put(name, passwords[name])
        return len(names)

    def provision_member(self, settings: Settings, member_id: str, rotate: bool = False) -> str:
        """Credentials and exactly the member's grants; returns its password."""
        principal = member_principal(member_id)
        password = self.ensure_user(principal, rotate)
        self.revoke_all(f"User:{principal}")
        self.grant(member_grants(settings, member_id))
        return password

    def provision_members(self, settings: Settings, member_ids: Iterable[str]) -> int:
        return self.provision({member_principal(m): member_grants(settings, m) for m in member_ids})

    def provision_producers(self, settings: Settings, producers: Iterable[str]) -> int:
        return self.provision({p: producer_grants(settings, p) for p in producers})

    def revoke_member(self, member_id: str) -> None:
        principal = member_principal(member_id)
        self.revoke_all(f"User:{principal}")
        self.delete_user(principal)


def _result(future: object, doing: str) -> object:
    try:
        return future.result(_TIMEOUT)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - named for the operator
        raise ProvisionError(f"{doing}: {exc}") from None

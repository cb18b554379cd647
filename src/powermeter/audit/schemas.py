"""Response models of the audit routes (documentation of the seed shape and the chain fields)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class AuditLog(BaseModel):
    id: str = Field(examples=["audit_5f0c2a9e41d7b3c8a6e1f204"])
    action_type: str = Field(examples=["VIEW"], description="VIEW, DOWNLOAD, EDIT, KEY_CREATED, KEY_REVOKED, …")
    receipt_id: str | None = Field(examples=["rcpt_abc123"])
    timestamp: str = Field(examples=["2024-06-27T14:30:00.000Z"])
    signature: str = Field(description="The entry's SHA-256 hash in the account's chain (hex)")
    verified: bool = Field(description="The chain checks out up to and including this entry, now")
    seq: int = Field(description="Position in the account's chain, from 1")
    prev_hash: str = Field(description="Hash of the entry before (64 zeros for the first)")
    actor_key_id: str | None
    actor_masked_key: str | None
    details: Any


class AuditLogsData(BaseModel):
    logs: list[AuditLog]
    total: int = Field(description="Entries matching the filters (the list holds at most `limit`)")


class AuditLogsOut(BaseModel):
    status: Literal["success"] = "success"
    data: AuditLogsData


class PublicKeyOut(BaseModel):
    key_id: str
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key_pem: str


class CheckpointData(BaseModel):
    account_id: str
    seq: int = Field(description="Entries covered: the chain up to and including this seq")
    head_hash: str = Field(description="Hash of entry `seq` (64 zeros for an empty chain)")
    key_id: str
    prev_checkpoint_hash: str | None = Field(description="SHA-256 of the previous checkpoint's signed bytes")
    timestamp: str
    type: Literal["powermeter.audit.checkpoint"] = "powermeter.audit.checkpoint"
    v: int = 1
    signature: str = Field(description="Base64 Ed25519 signature over the RFC 8785 JSON of the other fields")


class CheckpointOut(BaseModel):
    status: Literal["success"] = "success"
    data: CheckpointData


class CheckpointsData(BaseModel):
    checkpoints: list[CheckpointData]
    total: int
    public_keys: list[PublicKeyOut]


class CheckpointsOut(BaseModel):
    status: Literal["success"] = "success"
    data: CheckpointsData


class ChainBreakOut(BaseModel):
    kind: Literal["changed", "deleted", "inserted", "reordered", "rewritten", "truncated", "checkpoint_invalid"]
    seq: int = Field(description="Seq of the bad entry (deleted/truncated: of the first missing one)")
    entry_id: str | None
    message: str
    checkpoint_seq: int | None


class VerifyData(BaseModel):
    account_id: str
    status: Literal["ok", "broken"]
    ok: bool
    entries_checked: int
    head_seq: int
    head_hash: str
    verified_through_seq: int
    anchored_through_seq: int = Field(description="Entries up to here are also covered by a signed checkpoint")
    checkpoints_checked: int
    first_break: ChainBreakOut | None
    last_checkpoint: CheckpointData | None
    public_keys: list[PublicKeyOut]


class VerifyOut(BaseModel):
    status: Literal["success"] = "success"
    data: VerifyData

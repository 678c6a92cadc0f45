-- Bounds the data plane enforces: the same numbers as core/src/contract/limits.rs.
local MAX_PAYLOAD_BYTES = 1024 * 1024
local MAX_DURATION_MS = 365 * 24 * 3600 * 1000
local MIN_LEASE_MS = 100
local MAX_LEASE_MS = 24 * 3600 * 1000
local MAX_PRIORITY = 1000
local MAX_TAGS = 32
local MAX_TAG_VALUE_BYTES = 256
local MAX_CLAIM_BATCH = 1000
local MAX_REASON_BYTES = 4096
local MAX_RETRIES = 10000
local MAX_BACKOFF_MS = 30 * 24 * 3600 * 1000
local MAX_RECLAIMS = 10000
local MAX_FLOW_MEMBERS = 100000
local MAX_EDGES_PER_CHILD = 10000
local MAX_QUORUM = 10000
-- Flow work a call does itself before leaving the rest to the engine.
local FLOW_INLINE_BUDGET = 64
-- Queued flow work is due for the reconciler after this (the completion
-- listener drains it at once; the reconciler is the net under lost messages).
local FLOW_RECONCILE_GRACE_MS = 2000
-- A child waiting on parents is re-checked by the dependency reconciler this often.
local WAITING_RECHECK_MS = 15000
-- A flow whose members changed is recounted by the projector after this.
local FLOW_PROJECT_DELAY_MS = 5000
-- The projector recounts flows up to this size in one call.
local FLOW_PROJECT_MAX = 1000
local MAX_SUSPENSION_WAITPOINTS = 16
local MAX_EXECUTION_WAITPOINTS = 256
local MAX_EXECUTION_SIGNALS = 1000
local MAX_SIGNAL_PAYLOAD_BYTES = 64 * 1024
local MAX_CONDITION_NAMES = 16
local MIN_SECRET_BYTES = 16
local MAX_SECRET_BYTES = 64

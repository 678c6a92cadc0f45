-- Bounds the data plane enforces: the same numbers as core/src/contract/limits.rs.
-- Only the bounds shared parts use live here; a bound one own part uses lives
-- in that part (flows.lua, suspension.lua): Lua allows 200 locals in scope at
-- once, and the shared parts' locals are in scope everywhere.
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
-- Queued flow work is due for the reconciler after this (the completion
-- listener drains it at once; the reconciler is the net under lost messages).
local FLOW_RECONCILE_GRACE_MS = 2000
-- A child waiting on parents is re-checked by the dependency reconciler this often.
local WAITING_RECHECK_MS = 15000

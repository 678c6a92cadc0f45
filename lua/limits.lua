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

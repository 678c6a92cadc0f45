-- Key names, built from the prefixes core/src/keys.rs defines (module F,
-- generated from core): the one Lua file that builds key names.



local EXEC_PREFIX, IDX_PREFIX, FLOW_PREFIX = F.EXEC_PREFIX, F.IDX_PREFIX, F.FLOW_PREFIX
local DEPS_PREFIX, OUT_PREFIX, WAITPOINT_PREFIX = F.DEPS_PREFIX, F.OUT_PREFIX, F.WAITPOINT_PREFIX
local PASSED_PREFIX = F.PASSED_PREFIX
local SECRET_PREFIX, IDEMPOTENCY_PREFIX = F.SECRET_PREFIX, F.IDEMPOTENCY_PREFIX
local OWN_RING_PREFIX, PAUSED_PREFIX = F.OWN_RING_PREFIX, F.PAUSED_PREFIX
local SCHEDULE_PREFIX = F.SCHEDULE_PREFIX
local COUNTS_PREFIX, SERIES_PREFIX = F.COUNTS_PREFIX, F.SERIES_PREFIX

-- The partition hash tag of a key, e.g. '{fp:17}'.
local function tag_of(key)
  return string.match(key, '{fp:%d+}')
end

local function exec_key(eid)
  return EXEC_PREFIX .. eid
end

-- The lanes paused in a partition (a set).
local function paused_key(tag)
  return PAUSED_PREFIX .. tag
end

local function idx_key(tag, name)
  return IDX_PREFIX .. tag .. ':' .. name
end

local function eligible_key(tag, lane)
  return IDX_PREFIX .. tag .. ':eligible:' .. lane
end

-- The tag and lane of a lane's eligible index, or nil for any other key.
local function eligible_of(key)
  if string.sub(key, 1, #IDX_PREFIX) ~= IDX_PREFIX then return nil end
  return string.match(key, '^({fp:%d+}):eligible:(.*)$', #IDX_PREFIX + 1)
end

-- Shaped as an execution id of the partition `tag` ('{fp:N}:' and 32 more
-- bytes): enough to know its key is in the partition's slot.
-- (Without building strings: this runs for every member of every batch.)
local function eid_in_partition(eid, tag)
  return type(eid) == 'string' and #eid == #tag + 33 and string.find(eid, tag, 1, true) == 1
    and string.byte(eid, #tag + 1) == 58
end

-- An execution id '{fp:N}:<32 hex>' whose tag is `tag`.
local function eid_ok(eid, tag)
  return eid_in_partition(eid, tag) and string.find(eid, '^[0-9a-f]+$', #tag + 2) ~= nil
end

-- A flow's hash and its members (a sorted set, score 0: read in id order).
local function flow_key(tag, flow)
  return FLOW_PREFIX .. tag .. ':' .. flow
end

local function flow_members_key(tag, flow)
  return FLOW_PREFIX .. tag .. ':' .. flow .. ':members'
end

-- A flow member's incoming edges (a hash) and its children (a sorted set).
local function deps_key(eid)
  return DEPS_PREFIX .. eid
end

local function out_key(eid)
  return OUT_PREFIX .. eid
end

-- The results passed to a member with several data-passing parents (a hash).
local function passed_key(eid)
  return PASSED_PREFIX .. eid
end

-- A waitpoint (a hash on its execution's partition).
local function wp_key(tag, wpid)
  return WAITPOINT_PREFIX .. tag .. ':' .. wpid
end

-- The partition's copy of the waitpoint-token keyring (a hash).
local function secret_key(tag)
  return SECRET_PREFIX .. tag
end

-- What every idempotency record of partition `tag` starts with.
local function idem_prefix(tag)
  return IDEMPOTENCY_PREFIX .. tag .. ':'
end

-- A budget's or quota's hash (`kind`: 'budget' or 'quota') on its partition `tag`.
local ADMISSION_PREFIX = {budget = F.BUDGET_PREFIX, quota = F.QUOTA_PREFIX}
local function admission_key(kind, tag, name)
  return ADMISSION_PREFIX[kind] .. tag .. ':' .. name
end

-- A schedule's hash, on its partition `tag`.
local function sched_key(tag, name)
  return SCHEDULE_PREFIX .. tag .. ':' .. name
end

-- A member longer than a small sorted set (a listpack) may hold
-- (zset-max-listpack-value, 64 bytes by default), and never an index's
-- member: moves.lua creates an index with it as its first member, so that
-- Redis makes a skiplist, whose inserts at the tail do not scan the whole.
local SKIPLIST_SEED = 'ff:skiplist:----------------------------------------------------------------'

-- The two KEYS of one ownership ring: '<prefix>members' and '<prefix>leases'
-- (the unfiltered engines'), or with '<16 hex>:' after the prefix (a filter's).
local function own_ring_ok(members, leases)
  if type(members) ~= 'string' or type(leases) ~= 'string' then return false end
  if string.sub(members, 1, #OWN_RING_PREFIX) ~= OWN_RING_PREFIX then return false end
  local ring = string.match(members, '^(.*)members$', #OWN_RING_PREFIX + 1)
  if ring == nil or (ring ~= '' and not string.match(ring, '^' .. string.rep('%x', 16) .. ':$')) then
    return false
  end
  return leases == OWN_RING_PREFIX .. ring .. 'leases'
end

-- A partition's counters per (lane, state), and its per-lane counts per
-- minute of one hour (core/src/counts.rs).
local function counts_key(tag)
  return COUNTS_PREFIX .. tag
end

local function series_key(tag, hour)
  return SERIES_PREFIX .. tag .. ':' .. hour
end

--- @export tag_of, exec_key, idx_key, eligible_key, eligible_of, eid_in_partition, eid_ok,
--- @export flow_key, flow_members_key, deps_key, out_key, passed_key, wp_key, secret_key, idem_prefix,
--- @export admission_key, SKIPLIST_SEED, own_ring_ok, paused_key, sched_key,
--- @export counts_key, series_key

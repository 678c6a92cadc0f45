-- Key names: the mirror of core/src/keys.rs.

-- The partition hash tag of a key, e.g. '{fp:17}'.
local function tag_of(key)
  return string.match(key, '{fp:%d+}')
end

local function exec_key(eid)
  return 'ff:exec:' .. eid
end

local function idx_key(tag, name)
  return 'ff:idx:' .. tag .. ':' .. name
end

local function eligible_key(tag, lane)
  return 'ff:idx:' .. tag .. ':eligible:' .. lane
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
  return 'ff:flow:' .. tag .. ':' .. flow
end

local function flow_members_key(tag, flow)
  return 'ff:flow:' .. tag .. ':' .. flow .. ':members'
end

-- A flow member's incoming edges (a hash) and its children (a sorted set).
local function deps_key(eid)
  return 'ff:deps:' .. eid
end

local function out_key(eid)
  return 'ff:out:' .. eid
end

-- A waitpoint (a hash on its execution's partition).
local function wp_key(tag, wpid)
  return 'ff:wp:' .. tag .. ':' .. wpid
end

-- The partition's copy of the waitpoint-token keyring (a hash).
local function secret_key(tag)
  return 'ff:secret:' .. tag
end

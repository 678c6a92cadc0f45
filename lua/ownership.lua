-- Partition ownership between engine replicas (core/src/contract/ownership.rs,
-- decisions in core/src/ownership.rs). A ring (the engines of one scanner
-- filter) has two keys under one fixed hash tag (keys.lua, own_ring_ok):
--   members  hash  member id -> heartbeat expiry (server ms)
--   leases   hash  partition -> '<owner> <epoch> <expires_ms>'
-- A lease is free when its owner is empty (released) or it expired. A claim
-- takes a free lease and bumps its epoch; only the owner renews or releases a
-- live lease. Scanner calls are not fenced by these leases (they live on other
-- slots): every scanner function re-checks its members, so two replicas that
-- briefly both believe they own a partition do no harm (docs/architecture.md, ownership).

local MAX_LEASE_MS = F.MAX_LEASE_MS
local err, int_arg, name_arg, name_ok = P.err, P.int_arg, P.name_arg, P.name_ok
local now_ms, ok = P.now_ms, P.ok
local own_ring_ok = K.own_ring_ok

local function own_keys_ok(keys)
  if not own_ring_ok(keys[1], keys[2]) then
    return err('invalid_argument', 'keys:expected the members and leases of one ownership ring')
  end
end

-- A stored lease, or nil when the value is not one (then the lease is free).
local function parse_lease(v)
  local owner, epoch, exp = string.match(v or '', '^([%w_%.%-]*) (%d+) (%d+)$')
  if epoch == nil then return nil end
  return {owner = owner, epoch = tonumber(epoch), exp = tonumber(exp)}
end

local function lease_text(owner, epoch, exp)
  return owner .. ' ' .. string.format('%.0f', epoch) .. ' ' .. string.format('%.0f', exp)
end

-- HSET in chunks: unpack has a stack limit (thousands of partitions).
local function hset_all(key, flat)
  for i = 1, #flat, 1000 do
    redis.call('HSET', key, unpack(flat, i, math.min(i + 999, #flat)))
  end
end

-- All leases as {partition -> lease}, skipping entries that are not leases.
local function read_leases(leases_key)
  local flat = redis.call('HGETALL', leases_key)
  local leases = {}
  for i = 1, #flat, 2 do
    local p = tonumber(flat[i])
    local l = parse_lease(flat[i + 1])
    if p and p >= 0 and p == math.floor(p) and l then leases[p] = l end
  end
  return leases
end

-- {1, now, member count, (member, expiry)*, (partition, owner, epoch, expiry)*}
-- `flat`: the members hash as HGETALL lists it; `gone`: members left out.
local function own_view_reply(now, flat, gone, leases)
  local members = {}
  for i = 1, #flat, 2 do
    local exp = tonumber(flat[i + 1])
    if name_ok(flat[i]) and exp and not gone[flat[i]] then members[#members + 1] = {flat[i], exp} end
  end
  -- Sorted: a hash lists its fields in an order of its own.
  table.sort(members, function(a, b) return a[1] < b[1] end)
  local out = {1, now, #members}
  for _, m in ipairs(members) do
    out[#out + 1] = m[1]
    out[#out + 1] = m[2]
  end
  local ps = {}
  for p in pairs(leases) do ps[#ps + 1] = p end
  table.sort(ps)
  for _, p in ipairs(ps) do
    local l = leases[p]
    out[#out + 1] = p
    out[#out + 1] = l.owner
    out[#out + 1] = l.epoch
    out[#out + 1] = l.exp
  end
  return out
end

-- ARGV: member, ttl_ms, partition count, claim count, claims..., releases...
local function own_sync(keys, args)
  local bad = own_keys_ok(keys)
  if bad then return bad end
  local me, e = name_arg(args[1], 'member')
  if not me then return e end
  local ttl, e2 = int_arg(args[2], 'ttl_ms', 10, MAX_LEASE_MS)
  if not ttl then return e2 end
  local n, e3 = int_arg(args[3], 'partitions', 1, 65535)
  if not n then return e3 end
  local nclaim, e4 = int_arg(args[4], 'claims', 0, #args - 4)
  if not nclaim then return e4 end
  local claims, releases = {}, {}
  for i = 5, #args do
    local p, e5 = int_arg(args[i], 'partition', 0, n - 1)
    if not p then return e5 end
    if i - 4 <= nclaim then claims[#claims + 1] = p else releases[#releases + 1] = p end
  end
  local members_key, leases_key = keys[1], keys[2]
  local now = now_ms()
  redis.call('HSET', members_key, me, string.format('%.0f', now + ttl))
  -- Forget members whose heartbeat ran out.
  local flat = redis.call('HGETALL', members_key)
  local dead, gone = {}, {}
  for i = 1, #flat, 2 do
    local exp = tonumber(flat[i + 1])
    if exp == nil or exp <= now then
      dead[#dead + 1] = flat[i]
      gone[flat[i]] = true
    end
  end
  if #dead > 0 then redis.call('HDEL', members_key, unpack(dead)) end
  local leases = read_leases(leases_key)
  local changed = {}
  for _, p in ipairs(releases) do
    local l = leases[p]
    if l and l.owner == me and l.exp > now then
      leases[p] = {owner = '', epoch = l.epoch, exp = now}
      changed[p] = true
    end
  end
  for _, p in ipairs(claims) do
    local l = leases[p]
    if l == nil or l.owner == '' or l.exp <= now then
      leases[p] = {owner = me, epoch = (l and l.epoch or 0) + 1, exp = now + ttl}
      changed[p] = true
    end
  end
  -- Renew what is still ours. An expired lease is not renewed even if nobody
  -- took it: it is claimed again under a new epoch, so the replica knows it
  -- may have lost it in between.
  for p, l in pairs(leases) do
    if l.owner == me and l.exp > now and p < n then
      l.exp = now + ttl
      changed[p] = true
    end
  end
  local writes = {}
  for p in pairs(changed) do
    local l = leases[p]
    writes[#writes + 1] = p
    writes[#writes + 1] = lease_text(l.owner, l.epoch, l.exp)
  end
  hset_all(leases_key, writes)
  return own_view_reply(now, flat, gone, leases)
end

local function own_view(keys, args)
  local bad = own_keys_ok(keys)
  if bad then return bad end
  return own_view_reply(now_ms(), redis.call('HGETALL', keys[1]), {}, read_leases(keys[2]))
end

-- ARGV: member. Releases its live leases and removes its heartbeat.
local function own_leave(keys, args)
  local bad = own_keys_ok(keys)
  if bad then return bad end
  local me, e = name_arg(args[1], 'member')
  if not me then return e end
  local now = now_ms()
  local writes = {}
  for p, l in pairs(read_leases(keys[2])) do
    if l.owner == me and l.exp > now then
      writes[#writes + 1] = p
      writes[#writes + 1] = lease_text('', l.epoch, now)
    end
  end
  hset_all(keys[2], writes)
  redis.call('HDEL', keys[1], me)
  return ok(#writes / 2)
end

redis.register_function('ff_own_sync', own_sync)
redis.register_function{function_name = 'ff_own_view', callback = own_view, flags = {'no-writes'}}
redis.register_function('ff_own_leave', own_leave)

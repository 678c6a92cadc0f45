-- ff: the Valkey Functions library of ff (the data plane).
--
-- The shell loads these files, in the order listed in shell/src/store/library.rs,
-- as one library named `ff`, prefixed with `local FF_VERSION = "<hash of the text>"`
-- and the module F of facts shared with Rust (bounds, key prefixes, channels,
-- the state -> index rule), generated from core (core/src/lua_facts.rs).
--
-- Each file is a module with a function of its own: it imports what it uses
-- from earlier modules at its top (`local exec_key = K.exec_key`; in a hot
-- function, a local read of an upvalue, never a table lookup per call) and
-- lists what later files may import in `--- @export` lines. A domain calls a
-- later one only through a hook table (WRITE_HOOKS here, FLOW_HOOKS and
-- ADMISSION_HOOKS in execution.lua), which the later file fills in.
--
-- Conventions (see core/src/contract/mod.rs):
--   * reply {1, ...} on success, {0, code, detail} for a refusal; a refusal has
--     changed nothing: every function validates everything before its first write;
--   * KEYS[1] anchors the call to its partition's slot; other keys of the same
--     partition are derived here from KEYS[1]'s hash tag (keys.lua);
--   * time comes from the server (TIME).



local function ok(...)
  return {1, ...}
end

local function err(code, detail)
  return {0, code, detail or ''}
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer argument within [lo, hi], or nil and a refusal.
local function int_arg(v, name, lo, hi)
  local n = tonumber(v)
  if n == nil or n ~= math.floor(n) or n < lo or n > hi then
    return nil, err('invalid_argument', name .. ':expected an integer in ' .. lo .. '..' .. hi .. ', got ' .. tostring(v))
  end
  -- '-0' reads as negative zero, which would be stored as '-0' (not a number
  -- to the client's decoder).
  if n == 0 then n = 0 end
  return n
end

-- A checked integer argument `v` (read as `n`, below 2^53) as canonical
-- text: the argument itself when it already is (a number argument to
-- redis.call is formatted with %.17g on every call, a cost on the hot paths).
local function int_text(v, n)
  if v == '0' or string.find(v, '^[1-9]%d*$') then return v end
  return string.format('%d', n)
end

-- Small counts and deltas (attempts, epochs, reclaims, counter moves) as
-- text, each made once (at its first use: a library's load may not call
-- tostring): a number argument to redis.call is formatted with %.17g on
-- every call. (0 first: -0 would be made '-0'.)
local COUNT_TEXT = {}
local function count_text(n)
  if n == 0 then return '0' end
  local t = COUNT_TEXT[n]
  if t then return t end
  if n <= -1024 or n >= 1024 or n ~= math.floor(n) then return n end
  t = tostring(n)
  COUNT_TEXT[n] = t
  return t
end

-- A number field of a record, or nil unless it reads as a finite number
-- (tonumber also reads 'nan' and 'inf', which would make ZADD raise).
local function num(v)
  local n = tonumber(v)
  if n == nil or n ~= n or n == math.huge or n == -math.huge then return nil end
  return n
end

-- A counter field of a record (absent reads as 0), or nil unless it is a
-- whole number >= 0.
local function counter(v)
  if not v then return 0 end
  local n = num(v)
  if n == nil or n < 0 or n ~= math.floor(n) then return nil end
  return n
end

-- A record's optional fields `...` (at most three: {value or false, ...};
-- read only), read only when its `opt` (create.lua's shape_opt) says it has
-- some; a record without `opt` (damaged) is read in full.
local NO_OPTIONAL_FIELDS = {false, false, false}
local function optional_fields(ek, opt, ...)
  if opt == '' then return NO_OPTIONAL_FIELDS end
  return redis.call('HMGET', ek, ...)
end

-- A name: 1..64 bytes of [A-Za-z0-9_.-] (core/src/name.rs).
local function name_ok(v)
  return type(v) == 'string' and #v >= 1 and #v <= 64 and string.find(v, '^[%w_%.%-]+$') ~= nil
end

local function name_arg(v, name)
  if not name_ok(v) then
    return nil, err('invalid_argument', name .. ':expected 1..64 characters of [A-Za-z0-9_.-]')
  end
  return v
end

local function hex32_ok(v)
  return type(v) == 'string' and #v == 32 and string.find(v, '^[0-9a-f]+$') ~= nil
end

-- A read reply {1, <head...>, field, value, ...} of a whole hash, or nil
-- when the hash does not exist.
local function hash_reply(key, ...)
  local all = redis.call('HGETALL', key)
  if #all == 0 then return nil end
  local out = {1, ...}
  local n = #out
  for i = 1, #all do out[n + i] = all[i] end
  return out
end

-- HMGET into a table keyed by field name.
local function hmget(key, ...)
  local names = {...}
  local vals = redis.call('HMGET', key, unpack(names))
  local out = {}
  for i, n in ipairs(names) do
    if vals[i] then out[n] = vals[i] end
  end
  return out
end

-- Hooks run around every writing function: flows.lua sets them to settle what
-- the call left for flows (a member that ended: its dependents resolved, its
-- completion announced) whichever function ended it.
local WRITE_HOOKS = {before = function() end, after = function() end}

-- Counter increments of the current call, made once at its end (after the
-- hooks: flows settle transitions of their own): a batch of N transitions
-- costs one HINCRBY per (key, field), not N. Keys and fields are written in
-- the order first touched, so replicas and replays see one order.
local DELTA, DELTA_KEYS, DELTA_TTL = {}, {}, {}

-- Summers of runs of alike counts (execution.lua's moves and series): each
-- is called with `drop` false to add what it holds to the deltas before they
-- are written, true to forget it (a call that raised an error).
local COUNT_RUNS = {}

-- Add `n` to `field` of the hash `key` at the end of the call; a key given a
-- `ttl` (s) expires that long after its first write.
local function count(key, field, n, ttl)
  local t = DELTA[key]
  if not t then
    t = {by = {}, order = {}}
    DELTA[key] = t
    DELTA_KEYS[#DELTA_KEYS + 1] = key
    DELTA_TTL[key] = ttl
  end
  local v = t.by[field]
  if v == nil then
    t.order[#t.order + 1] = field
    v = 0
  end
  t.by[field] = v + n
end

local function settle_counts()
  for i = 1, #COUNT_RUNS do COUNT_RUNS[i](false) end
  if #DELTA_KEYS == 0 then return end
  for i = 1, #DELTA_KEYS do
    local key = DELTA_KEYS[i]
    local t = DELTA[key]
    local fresh = false
    for j = 1, #t.order do
      local n = t.by[t.order[j]]
      if n ~= 0 then
        local v = redis.call('HINCRBY', key, t.order[j], count_text(n))
        -- (a count back at zero is dropped: a partition whose executions are
        -- all purged keeps no counts key)
        if v == 0 then redis.call('HDEL', key, t.order[j]) end
        fresh = fresh or v == n
      end
    end
    -- A key made by this call has only fields made by it: its expiry is set
    -- then (and when a field is new to it), not on every call.
    if fresh and DELTA_TTL[key] then redis.call('EXPIRE', key, DELTA_TTL[key], 'NX') end
  end
  DELTA, DELTA_KEYS, DELTA_TTL = {}, {}, {}
end

local function register(name, fn)
  redis.register_function(name, function(keys, args)
    -- (a call that raised an error left its deltas behind: dropped)
    if #DELTA_KEYS > 0 then DELTA, DELTA_KEYS, DELTA_TTL = {}, {}, {} end
    for i = 1, #COUNT_RUNS do COUNT_RUNS[i](true) end
    WRITE_HOOKS.before()
    local reply = fn(keys, args)
    WRITE_HOOKS.after()
    settle_counts()
    return reply
  end)
end

local function register_ro(name, fn)
  redis.register_function{function_name = name, callback = fn, flags = {'no-writes'}}
end

redis.register_function{
  function_name = 'ff_version',
  callback = function() return {FF_VERSION} end,
  flags = {'no-writes'},
}

--- @export ok, err, now_ms, int_arg, int_text, count_text, num, counter, optional_fields, name_ok,
--- @export name_arg, hex32_ok, hash_reply, hmget, WRITE_HOOKS, register, register_ro, count,
--- @export COUNT_RUNS

-- Index writes. A transition either writes its index moves at once or, in a
-- batch function, collects them in a `moves` table (`mv`) and makes them once
-- at the end: one ZREM and one ZADD per index per batch instead of one per
-- member, which is most of what a hot path costs. Hash writes are never
-- deferred, so a later member of the same batch sees every earlier change.

local READY_CHANNEL, WAKE_CHANNEL = F.READY_CHANNEL, F.WAKE_CHANNEL
local name_ok, num = P.name_ok, P.num
local SKIPLIST_SEED, eligible_key, eligible_of = K.SKIPLIST_SEED, K.eligible_key, K.eligible_of
local idx_key = K.idx_key

-- A whole number of ms as text ('%d' is exact below 2^53; beyond, the
-- number). A number argument to redis.call is formatted with %.17g, a little
-- dearer than this; the last value's text is kept (a call passes its `now`
-- and a time made from it more than once).
local ms_last, ms_last_text = nil, nil
local function ms_text(v)
  if v == ms_last then return ms_last_text end
  if v == math.floor(v) and math.abs(v) < 9007199254740992 then
    ms_last, ms_last_text = v, string.format('%d', v)
    return ms_last_text
  end
  return v
end

-- ZADD of {score, member, score, member, ...}, last pair first. A batch's
-- pairs mostly come in ascending order (one score, members read in index
-- order), and a small sorted set (a listpack) inserts each member by a scan
-- from its head: in descending order each insert stops at once. (Reversed
-- in place: the caller's list is spent.)
local function zadd_pairs(key, entries)
  local i, j = 1, #entries - 1
  while i < j do
    entries[i], entries[i + 1], entries[j], entries[j + 1] = entries[j], entries[j + 1], entries[i], entries[i + 1]
    i, j = i + 2, j - 2
  end
  return redis.call('ZADD', key, unpack(entries))
end

-- zadd_pairs into an index that does not exist yet (`score`: any of theirs),
-- created as a skiplist (keys.lua SKIPLIST_SEED): an index takes its members
-- mostly at its tail (a later due, or first in first out among equal
-- priorities), where a listpack would scan the whole to insert.
local function zadd_new_index(key, entries, score)
  -- (last: zadd_pairs sends the pairs last first)
  entries[#entries + 1] = ms_text(score)
  entries[#entries + 1] = SKIPLIST_SEED
  zadd_pairs(key, entries)
  redis.call('ZREM', key, SKIPLIST_SEED)
end

-- zadd_due for many members at once: `entries` is {due, member, due, member, ...}
-- (`earliest`: the least due, when the caller knows it).
-- When the earliest of them becomes the index's earliest, the engine is told
-- (message '<index> <tag> <due>') so its scanner wakes in time instead of at
-- its next planned look.
local function zadd_due_many(tag, name, entries, earliest)
  if #entries == 0 then return end
  local key = idx_key(tag, name)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if not earliest then
    -- (a due may come as text, formatted once for a whole batch: a run of
    -- the same text is read once)
    local seen = entries[1]
    earliest = tonumber(seen)
    for i = 3, #entries, 2 do
      local d = entries[i]
      if d ~= seen then
        seen = d
        local due = tonumber(d)
        if due < earliest then earliest = due end
      end
    end
  end
  if head[2] == nil then
    zadd_new_index(key, entries, earliest)
  else
    zadd_pairs(key, entries)
  end
  if head[2] == nil or earliest < tonumber(head[2]) then
    redis.call('PUBLISH', WAKE_CHANNEL, name .. ' ' .. tag .. ' ' .. ms_text(earliest))
  end
end

-- Add one member to a due-time index (see zadd_due_many); `due` a number.
local function zadd_due(tag, name, due, eid)
  zadd_due_many(tag, name, {ms_text(due), eid}, due)
end

-- A batch's moves; `now` is the batch's time (one for all its members).
local function new_moves(now)
  return {rem = {}, add = {}, order = {}, due = {}, due_order = {}, sadd = {}, keys = {}, lanes = {}, scores = {},
    now = now, now_s = ms_text(now), after = {}}
end

-- The batch's now + `ms` (a record's field, absent or unreadable = 0) as
-- text, formatted once per batch and distinct value: a number argument to
-- redis.call is formatted for every member.
local function batch_after(mv, ms)
  local key = ms or ''
  local t = mv.after[key]
  if not t then
    t = ms_text(mv.now + (num(ms) or 0))
    mv.after[key] = t
  end
  return t
end

-- Per-batch caches: a key built once per batch, a lane name checked once.
local function batch_key(mv, tag, name)
  local k = mv.keys[name]
  if not k then
    k = idx_key(tag, name)
    mv.keys[name] = k
  end
  return k
end

local function batch_lane_key(mv, tag, lane)
  local k = mv.lanes[lane]
  if k == nil then
    k = name_ok(lane) and eligible_key(tag, lane) or false
    mv.lanes[lane] = k
  end
  return k
end

-- A key's list of moves in `list` (mv.rem or mv.add), made at its first
-- move (mv.order: each key once, in the order first touched; called only
-- then, so a move costs no call).
local function first_move(mv, list, key)
  if not mv.rem[key] and not mv.add[key] then mv.order[#mv.order + 1] = key end
  local t = {}
  list[key] = t
  return t
end

local function defer_zrem(mv, key, member)
  local t = mv.rem[key] or first_move(mv, mv.rem, key)
  t[#t + 1] = member
end

local function defer_zadd(mv, key, score, member)
  local t = mv.add[key] or first_move(mv, mv.add, key)
  t[#t + 1] = score
  t[#t + 1] = member
end

-- Out of a named index of this partition: at once without `mv`, else at the
-- batch's end.
local function idx_rem(mv, tag, name, member)
  if mv then
    defer_zrem(mv, mv.keys[name] or batch_key(mv, tag, name), member)
  else
    redis.call('ZREM', idx_key(tag, name), member)
  end
end

-- Into a due-time index of this partition (zadd_due), at once or deferred.
local function idx_due(mv, tag, name, due, member)
  if not mv then return zadd_due(tag, name, due, member) end
  local t = mv.due[name]
  if not t then
    t = {}
    mv.due[name] = t
    mv.due_order[#mv.due_order + 1] = name
  end
  t[#t + 1] = due
  t[#t + 1] = member
  mv.due_tag = tag
end

-- Into a set (the partition's `all` set), at once or deferred.
local function idx_sadd(mv, key, member)
  if not mv then return redis.call('SADD', key, member) end
  mv.sadd_key = key
  mv.sadd[#mv.sadd + 1] = member
end

-- Make the collected moves. Adds to an eligible index announce it to workers
-- when it was empty (as make_eligible does for a single member).
local function apply_moves(mv)
  for _, key in ipairs(mv.order) do
    if mv.rem[key] then redis.call('ZREM', key, unpack(mv.rem[key])) end
    local add = mv.add[key]
    if add then
      local lane_tag, lane = eligible_of(key)
      if lane_tag and redis.call('ZCARD', key) == 0 then
        redis.call('PUBLISH', READY_CHANNEL, lane .. ' ' .. lane_tag)
        zadd_new_index(key, add, add[1])
      else
        zadd_pairs(key, add)
      end
    end
  end
  if #mv.sadd > 0 then redis.call('SADD', mv.sadd_key, unpack(mv.sadd)) end
  for _, name in ipairs(mv.due_order) do
    zadd_due_many(mv.due_tag, name, mv.due[name])
  end
end

--- @export zadd_pairs, zadd_new_index, zadd_due_many, zadd_due, new_moves, ms_text, batch_after, batch_key,
--- @export batch_lane_key, defer_zrem, defer_zadd, idx_rem, idx_due, idx_sadd, apply_moves

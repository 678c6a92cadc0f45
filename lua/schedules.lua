-- Schedules: define (create or update), pause, resume, delete, read, list,
-- and the engine's fire (core/src/contract/schedule.rs; the timetable and
-- the misfire decision are Rust's, core/src/schedule.rs: there is no cron
-- parser here).
--
-- A schedule is one hash on its partition (sched_key), an entry in the
-- partition's `schedules` index scored by its next fire time while it is
-- active, and its name in `schedule_names`. Exactly once per fire time: a
-- fire applies only while the record still holds the revision and next fire
-- time its decision was made from, and makes the executions, counts the
-- missed fire times and moves the next fire time in this one call; a define
-- or resume whose next fire time is not after the last fire time decided is
-- answered `stale`.

local MAX_CLAIM_BATCH, MAX_PAYLOAD_BYTES = F.MAX_CLAIM_BATCH, F.MAX_PAYLOAD_BYTES
local MAX_SCHEDULE_FIRES, MAX_TAGS = F.MAX_SCHEDULE_FIRES, F.MAX_TAGS
local err, int_arg, name_ok, now_ms, ok = P.err, P.int_arg, P.name_ok, P.now_ms, P.ok
local register, register_ro = P.register, P.register_ro
local eid_ok, exec_key, idx_key, sched_key, tag_of = K.eid_ok, K.exec_key, K.idx_key, K.sched_key, K.tag_of
local apply_moves, new_moves, zadd_due_many, zadd_pairs = MV.apply_moves, MV.new_moves, MV.zadd_due_many, MV.zadd_pairs
local index_target = EXEC.index_target
local shape_check, item_check, create_apply = CREATE.shape_check, CREATE.item_check, CREATE.create_apply

local MAX_MS = 9007199254740991
local MIN_GRACE_MS, MAX_GRACE_MS = 1000, 86400000
-- The definition's fields, as define compares and stores them.
local DEF_FIELDS = {'trigger', 'zone', 'start', 'end', 'misfire', 'grace', 'overlap', 'paused', 'payload', 'shape'}

-- A template's shape (a list of strings) as one string: netstrings.
local function netstrings(list)
  local parts = {}
  for i, s in ipairs(list) do parts[i] = #s .. ':' .. s end
  return table.concat(parts)
end

-- The list back, or nil when `s` is not netstrings (damaged data).
local function split_netstrings(s)
  if type(s) ~= 'string' then return nil end
  local out, at = {}, 1
  while at <= #s do
    local colon = string.find(s, ':', at, true)
    if not colon then return nil end
    local n = tonumber(string.sub(s, at, colon - 1))
    if n == nil or n < 0 or n ~= math.floor(n) or colon + n > #s then return nil end
    out[#out + 1] = string.sub(s, colon + 1, colon + n)
    at = colon + n + 1
  end
  return out
end

-- '' or a whole number of ms.
local function opt_ms(v, name)
  if v == '' then return '' end
  local _, e = int_arg(v, name, 0, MAX_MS)
  if e then return nil, e end
  return v
end

local function sched_target(keys, name)
  local k = keys[1]
  local tag = tag_of(k or '')
  if tag == nil or not name_ok(name) or k ~= sched_key(tag, name) then
    return nil, nil, err('invalid_argument', 'schedule:KEYS[1] must be the hash of the schedule named in ARGV[1]')
  end
  return k, tag
end

-- The schedule's due-index entry follows its next fire time ('' = none).
local function index_entry(tag, name, next)
  if next == '' then
    redis.call('ZREM', idx_key(tag, 'schedules'), name)
  else
    zadd_due_many(tag, 'schedules', {next, name})
  end
end

local function template_refusal(e)
  -- A template field is named as such (the detail is `field:reason`).
  if e[2] == 'invalid_argument' then e[3] = 'template.' .. e[3] end
  return e
end

-- ff_schedule_define
-- KEYS: the schedule's hash
-- ARGV: name, trigger, zone, start, end, misfire, grace, overlap, paused,
--       next ('' = none), payload, n, shape (n values: ff_create's ARGV
--       without the id and the payload)
-- -> {1, 'created'|'updated'|'unchanged', rev} or {1, 'stale', last fire}
local function ff_schedule_define(keys, args)
  local _
  local name = args[1]
  local k, tag, e = sched_target(keys, name)
  if e then return e end
  local trigger, zone, misfire, overlap, paused = args[2], args[3], args[6], args[8], args[9]
  if type(trigger) ~= 'string' or #trigger > 300
    or not (string.find(trigger, '^cron:.') or string.find(trigger, '^every:[1-9]%d*$')) then
    return err('invalid_argument', 'trigger:expected cron:<expr> or every:<ms>')
  end
  if type(zone) ~= 'string' or #zone < 1 or #zone > 64 or not string.find(zone, '^[%w_/%+%-]+$') then
    return err('invalid_argument', 'zone:expected an IANA time zone name')
  end
  local start, stop, next
  start, e = opt_ms(args[4], 'start'); if e then return e end
  stop, e = opt_ms(args[5], 'end'); if e then return e end
  if misfire ~= 'skip' and misfire ~= 'once' then
    local n = tonumber(string.match(misfire or '', '^catch_up:(%d+)$'))
    if n == nil or n < 1 or n > MAX_SCHEDULE_FIRES then
      return err('invalid_argument', 'misfire:expected skip, once or catch_up:1..' .. MAX_SCHEDULE_FIRES)
    end
  end
  _, e = int_arg(args[7], 'grace', MIN_GRACE_MS, MAX_GRACE_MS); if e then return e end
  if overlap ~= 'skip' and overlap ~= 'allow' then return err('invalid_argument', 'overlap:expected skip or allow') end
  if paused ~= '0' and paused ~= '1' then return err('invalid_argument', 'paused:expected 0 or 1') end
  next, e = opt_ms(args[10], 'next'); if e then return e end
  if paused == '1' then next = '' end
  local payload = args[11] or ''
  if #payload > MAX_PAYLOAD_BYTES then return err('payload_too_large', #payload .. ':' .. MAX_PAYLOAD_BYTES) end
  local n
  n, e = int_arg(args[12], 'template', 15, 18 + 2 * MAX_TAGS); if e then return e end
  if #args ~= 12 + n then return err('invalid_argument', 'template:expected ' .. n .. ' shape arguments') end
  local shape = {unpack(args, 13, 12 + n)}
  local c
  c, e = shape_check(tag, shape)
  if e then return template_refusal(e) end
  if c.member then return err('invalid_argument', 'template.flow:a schedule makes no flow members') end
  if c.idem_ttl > 0 then return err('invalid_argument', 'template.idempotency:a fire is its own idempotency key') end
  local want = {trigger, zone, start, stop, misfire, args[7], overlap, paused, payload, netstrings(shape)}
  local h = redis.call('HMGET', k, 'rev', 'last_fire', unpack(DEF_FIELDS))
  if h[1] then
    local same = true
    for i = 1, #DEF_FIELDS do
      if h[i + 2] ~= want[i] then same = false; break end
    end
    if same then return ok('unchanged', tonumber(h[1])) end
    if next ~= '' and h[2] and h[2] ~= '' and tonumber(next) <= tonumber(h[2]) then
      return ok('stale', tonumber(h[2]))
    end
  end
  local now_s = tostring(now_ms())
  local f = {}
  for i, field in ipairs(DEF_FIELDS) do
    f[#f + 1] = field
    f[#f + 1] = want[i]
  end
  f[#f + 1] = 'next'; f[#f + 1] = next
  f[#f + 1] = 'updated'; f[#f + 1] = now_s
  if not h[1] then f[#f + 1] = 'created'; f[#f + 1] = now_s end
  redis.call('HSET', k, unpack(f))
  redis.call('HDEL', k, 'broken')
  local rev = redis.call('HINCRBY', k, 'rev', '1')
  redis.call('SADD', idx_key(tag, 'schedule_names'), name)
  index_entry(tag, name, next)
  return ok(h[1] and 'updated' or 'created', rev)
end

-- ff_schedule_pause  KEYS: the schedule's hash  ARGV: name
-- -> {1, 1 paused now | 0 paused already}
local function ff_schedule_pause(keys, args)
  local k, tag, e = sched_target(keys, args[1])
  if e then return e end
  local h = redis.call('HMGET', k, 'rev', 'paused')
  if not h[1] then return err('not_found') end
  if h[2] == '1' then return ok(0) end
  redis.call('HSET', k, 'paused', '1', 'next', '')
  redis.call('HINCRBY', k, 'rev', '1')
  index_entry(tag, args[1], '')
  return ok(1)
end

-- ff_schedule_resume  KEYS: the schedule's hash  ARGV: name, rev read, next
-- -> {1, 'resumed'|'active'|'stale'}
local function ff_schedule_resume(keys, args)
  local name = args[1]
  local k, tag, e = sched_target(keys, name)
  if e then return e end
  local next
  next, e = opt_ms(args[3] or '', 'next'); if e then return e end
  local h = redis.call('HMGET', k, 'rev', 'paused', 'last_fire')
  if not h[1] then return err('not_found') end
  if h[2] ~= '1' then return ok('active') end
  if h[1] ~= args[2] then return ok('stale') end
  if next ~= '' and h[3] and h[3] ~= '' and tonumber(next) <= tonumber(h[3]) then return ok('stale') end
  redis.call('HSET', k, 'paused', '0', 'next', next)
  redis.call('HINCRBY', k, 'rev', '1')
  index_entry(tag, name, next)
  return ok('resumed')
end

-- ff_schedule_delete  KEYS: the schedule's hash  ARGV: name  -> {1, 1|0}
local function ff_schedule_delete(keys, args)
  local name = args[1]
  local k, tag, e = sched_target(keys, name)
  if e then return e end
  local deleted = redis.call('DEL', k)
  redis.call('ZREM', idx_key(tag, 'schedules'), name)
  redis.call('SREM', idx_key(tag, 'schedule_names'), name)
  return ok(deleted)
end

-- ff_schedule_get  KEYS: the schedule's hash  ARGV: name
-- -> {1, server time, field, value, ...} ({1, server time}: no such schedule)
local function ff_schedule_get(keys, args)
  local k, _, e = sched_target(keys, args[1])
  if e then return e end
  local out = {1, now_ms()}
  local all = redis.call('HGETALL', k)
  for i = 1, #all do out[i + 2] = all[i] end
  return out
end

-- ff_schedule_list  KEYS: the partition's schedule_names set
-- -> {1, server time, (name, n, n field/value pairs)*}
local function ff_schedule_list(keys, args)
  local idx, tag, e = index_target(keys, 'schedule_names')
  if e then return e end
  local out = {1, now_ms()}
  for _, name in ipairs(redis.call('SMEMBERS', idx)) do
    if name_ok(name) then
      local all = redis.call('HGETALL', sched_key(tag, name))
      out[#out + 1] = name
      out[#out + 1] = #all / 2
      for i = 1, #all do out[#out + 1] = all[i] end
    end
  end
  return out
end

-- A fire's previous execution is live while it exists and has not ended.
local function live(eid)
  if not eid or eid == '' then return false end
  local phase = redis.call('HGET', exec_key(eid), 'phase')
  return phase ~= false and phase ~= nil and phase ~= 'terminal'
end

local function tag_matches(c, tag_name, tag_value)
  local want = 'tag.' .. tag_name
  for i = 1, #c.tags, 2 do
    if c.tags[i] == want then return c.tags[i + 1] == tag_value end
  end
  return false
end

-- Parse and check every item of a fire call before anything is written.
local function fire_items(args, tag)
  local _
  local n, e = int_arg(args[4], 'count', 0, MAX_CLAIM_BATCH)
  if e then return nil, e end
  local items, at = {}, 5
  for i = 1, n do
    local op, name = args[at], args[at + 1]
    if not name_ok(name) and not (op == 'repair' and type(name) == 'string') then
      return nil, err('invalid_argument', 'name:expected a schedule name')
    end
    if op == 'repair' then
      local rev
      rev, e = opt_ms(args[at + 2] or '', 'rev'); if e then return nil, e end
      items[i] = {op = op, name = name, rev = rev, broken = args[at + 3] or ''}
      at = at + 4
    elseif op == 'fire' then
      local it = {op = op, name = name, rev = args[at + 2], next = args[at + 3], last = args[at + 4],
        new_next = args[at + 5], fires = {}}
      local next, last, missed, k
      _, e = int_arg(it.rev, 'rev', 0, MAX_MS); if e then return nil, e end
      next, e = int_arg(it.next, 'next', 0, MAX_MS); if e then return nil, e end
      last, e = int_arg(it.last, 'last', next, MAX_MS); if e then return nil, e end
      _, e = opt_ms(it.new_next or '', 'new_next'); if e then return nil, e end
      if it.new_next ~= '' and tonumber(it.new_next) <= last then
        return nil, err('invalid_argument', 'new_next:must be after the last fire time decided')
      end
      missed, e = int_arg(args[at + 6], 'missed', 0, MAX_MS); if e then return nil, e end
      k, e = int_arg(args[at + 7], 'fires', 0, MAX_SCHEDULE_FIRES); if e then return nil, e end
      it.missed, it.last_n = missed, last
      local prev = next - 1
      for j = 1, k do
        local t, eid = args[at + 6 + 2 * j], args[at + 7 + 2 * j]
        local tn
        tn, e = int_arg(t, 'fire', prev + 1, last); if e then return nil, e end
        if not eid_ok(eid, tag) then return nil, err('invalid_argument', 'fire:expected an execution id of the partition') end
        it.fires[j] = {t, eid}
        prev = tn
      end
      items[i] = it
      at = at + 8 + 2 * k
    else
      return nil, err('invalid_argument', 'op:expected fire or repair')
    end
  end
  if at - 1 ~= #args then return nil, err('invalid_argument', 'count:expected ' .. n .. ' items') end
  return items
end

-- Put a due-index entry right (a `repair` item). -> its code
local function repair(tag, idx, it)
  local k = name_ok(it.name) and sched_key(tag, it.name) or nil
  local h = k and redis.call('HMGET', k, 'rev', 'next', 'paused') or {}
  if not h[1] then
    redis.call('ZREM', idx, it.name)
    return it.broken ~= '' and 'malformed' or 'repaired'
  end
  if h[1] ~= it.rev then return 'gone' end
  if it.broken ~= '' then
    redis.call('HSET', k, 'broken', it.broken, 'next', '')
    redis.call('ZREM', idx, it.name)
    return 'malformed'
  end
  index_entry(tag, it.name, h[3] == '1' and '' or (h[2] or ''))
  return 'repaired'
end

-- Templates checked, by stored shape, kept between calls: decoding and
-- checking one costs a fire about a quarter of its server time, and many
-- schedules share one. Without a flow (a schedule's template is no flow
-- member: refused at define, and a stored one is malformed) the check
-- reads nothing but the text, in any partition, so the same text checks
-- the same; what a creation derives from `now` (shape_fields) is made
-- again each call. Bounded: past MAX_CHECKED it starts over.
local MAX_CHECKED = 1000
local checked, n_checked = {}, 0
local function checked_shape(tag, text, fresh)
  if type(text) ~= 'string' then return false end
  local c = checked[text]
  if c == nil then
    local shape = split_netstrings(text)
    c = shape and shape_check(tag, shape) or false
    if c and c.member then c = false end
    if n_checked >= MAX_CHECKED then checked, n_checked = {}, 0 end
    checked[text], n_checked = c, n_checked + 1
  end
  if c and not fresh[c] then
    c.fields, fresh[c] = nil, true
  end
  return c
end

-- ff_schedule_fire: the engine's fire of the due schedules of one partition.
-- KEYS: the partition's schedules index
-- ARGV: filter namespace, filter tag name, filter tag value, n, then n items:
--   fire, name, rev, next, last, new next ('' = ended), missed, k, (fire time, execution id) * k
--   repair, name, rev ('' = no record found), broken reason ('' = none)
-- -> {1, executions made, missed, overlapped, next due or -1, (name, code)*}
--    listing the items not fired as sent: gone, filtered, early, repaired, malformed
local function ff_schedule_fire(keys, args)
  local idx, tag, e = index_target(keys, 'schedules')
  if e then return e end
  local ns, tag_name, tag_value = args[1] or '', args[2] or '', args[3] or ''
  if (ns ~= '' and not name_ok(ns)) or (tag_name ~= '' and not name_ok(tag_name)) then
    return err('invalid_argument', 'filter:bad namespace or tag name')
  end
  local items
  items, e = fire_items(args, tag)
  if e then return e end
  local now = now_ms()
  local now_s = tostring(now)
  local mv = new_moves(now)
  local fired, missed, overlapped = 0, 0, 0
  local out = {1, 0, 0, 0, -1}
  local due = {}
  -- The templates this call has used (their fields made for its `now`).
  local fresh = {}
  local function answer(name, code)
    out[#out + 1] = name
    out[#out + 1] = code
  end
  for _, it in ipairs(items) do
    if it.op == 'repair' then
      answer(it.name, repair(tag, idx, it))
    else
      local k = sched_key(tag, it.name)
      local h = redis.call('HMGET', k, 'rev', 'next', 'paused', 'shape', 'payload', 'overlap', 'last_exec',
        'fired', 'missed', 'overlapped')
      local c
      if not h[1] then
        redis.call('ZREM', idx, it.name)
        answer(it.name, 'gone')
      elseif h[1] ~= it.rev or h[2] ~= it.next or h[3] == '1' then
        -- The record moved on (another engine fired it, a repeat of this
        -- call, an update, a pause): nothing to do.
        answer(it.name, 'gone')
      elseif it.last_n > now then
        -- Decided on a later clock than the server's now (a clock set back).
        answer(it.name, 'early')
      else
        c = checked_shape(tag, h[4], fresh)
        if not c or #(h[5] or '') > MAX_PAYLOAD_BYTES then
          redis.call('HSET', k, 'broken', 'template does not decode', 'next', '')
          redis.call('ZREM', idx, it.name)
          answer(it.name, 'malformed')
        elseif (ns ~= '' and c.ns ~= ns) or (tag_name ~= '' and not tag_matches(c, tag_name, tag_value)) then
          answer(it.name, 'filtered')
        else
          local last_exec = h[7] or ''
          local made, skipped = 0, 0
          for _, f in ipairs(it.fires) do
            local t, eid = f[1], f[2]
            if h[6] == 'skip' and live(last_exec) then
              skipped = skipped + 1
            elseif redis.call('EXISTS', exec_key(eid)) == 0 then
              -- (an existing one: this fire time made it already; never twice)
              local x
              x, e = item_check(tag, c, eid, h[5] or '', nil, {})
              if x then
                x.absent = true
                x.extra = {'tag.ff.schedule', it.name, 'tag.ff.fire', t}
                create_apply(tag, x, now, now_s, mv)
                made = made + 1
                last_exec = eid
              end
            end
          end
          -- The counters are written with the rest (read above: one write).
          local w = {'next', it.new_next, 'last_fire', it.last, 'last_exec', last_exec, 'last_run', now_s}
          if made > 0 then
            w[#w + 1] = 'fired'; w[#w + 1] = (tonumber(h[8]) or 0) + made
          end
          if it.missed > 0 then
            w[#w + 1] = 'missed'; w[#w + 1] = (tonumber(h[9]) or 0) + it.missed
          end
          if skipped > 0 then
            w[#w + 1] = 'overlapped'; w[#w + 1] = (tonumber(h[10]) or 0) + skipped
          end
          redis.call('HSET', k, unpack(w))
          if it.new_next == '' then
            redis.call('ZREM', idx, it.name)
          else
            due[#due + 1] = it.new_next
            due[#due + 1] = it.name
          end
          fired, missed, overlapped = fired + made, missed + it.missed, overlapped + skipped
        end
      end
    end
  end
  apply_moves(mv)
  -- The caller is the scanner of this partition and learns its next due
  -- from the answer: no wake-up message (zadd_due_many's head read and
  -- announcement are left out).
  if #due > 0 then zadd_pairs(idx, due) end
  out[2], out[3], out[4] = fired, missed, overlapped
  local head = redis.call('ZRANGE', idx, 0, 0, 'WITHSCORES')
  if head[2] then out[5] = tonumber(head[2]) end
  return out
end

register('ff_schedule_define', ff_schedule_define)
register('ff_schedule_pause', ff_schedule_pause)
register('ff_schedule_resume', ff_schedule_resume)
register('ff_schedule_delete', ff_schedule_delete)
register('ff_schedule_fire', ff_schedule_fire)
register_ro('ff_schedule_get', ff_schedule_get)
register_ro('ff_schedule_list', ff_schedule_list)

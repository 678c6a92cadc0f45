-- An execution's state and the index moves between states, which the
-- lifecycle's calls (create.lua, claim.lua, lease.lua), the scanners, flows,
-- suspension and admission share.
--
-- One hash per execution (core/src/keys.rs) holds its state dimensions
-- (phase, elig, outcome), policy, payload, result, lease and current attempt.
-- Index membership follows state exactly: the helpers below are the one place
-- that moves an execution between index sets, by the rule core states
-- (core/src/invariant.rs state_index, read here as F.RUNNABLE_INDEX).

local MAX_BACKOFF_MS, MAX_PRIORITY, MAX_RETRIES = F.MAX_BACKOFF_MS, F.MAX_PRIORITY, F.MAX_RETRIES
local ENDED_CHANNEL, READY_CHANNEL = F.ENDED_CHANNEL, F.READY_CHANNEL
local RUNNABLE_INDEX = F.RUNNABLE_INDEX
local ABSENT = F.ABSENT
local err, hmget, num, count, COUNT_RUNS = P.err, P.hmget, P.num, P.count, P.COUNT_RUNS
local counts_key, series_key, flow_key = K.counts_key, K.series_key, K.flow_key
local FLOW_LIVE_PREFIX, SERIES, SERIES_TTL_S = F.FLOW_LIVE_PREFIX, F.SERIES, F.SERIES_TTL_S
local eid_ok, eligible_key, exec_key, idx_key = K.eid_ok, K.eligible_key, K.exec_key, K.idx_key
local tag_of = K.tag_of
local end_suspension = WP.end_suspension
local batch_after, defer_zadd, idx_due = MV.batch_after, MV.defer_zadd, MV.idx_due
local idx_rem = MV.idx_rem
local ms_text, zadd_new_index = MV.ms_text, MV.zadd_new_index

-- The `opt` flag of a watched execution (create.lua's flags say which
-- optional fields a record has; this one has no field).
local WATCHED = 'w'

-- Queued flow work is due for the reconciler after this (the completion
-- listener drains it at once; the reconciler is the net under lost messages).
local FLOW_RECONCILE_GRACE_MS = 2000
-- A child waiting on parents is re-checked by the dependency reconciler this often.
local WAITING_RECHECK_MS = 15000

-- Eligible-index score: higher priority first, then first in, first out.
local PRIORITY_SCALE = 4398046511104 -- 2^42 ms, about 139 years

local function eligible_score(priority, enqueued_ms)
  return (MAX_PRIORITY - priority) * PRIORITY_SCALE + enqueued_ms
end

-- eligible_score as text, formatted once per batch and priority (a batch has
-- one `now`; a number argument would be formatted for every member).
local function batch_eligible_score(mv, priority, now)
  local s = mv.scores[priority]
  if not s then
    s = ms_text(eligible_score(priority, now))
    mv.scores[priority] = s
  end
  return s
end

-- The fields that say which indexes an execution is in, read by every
-- transition first, with the transition's own `...` after them; absent
-- fields read as nil. (Positional, without helper tables: this runs once per
-- execution on every hot path.)
-- Someone waits for this execution's end (ff_watch marked its `opt`).
local function watched(opt)
  return opt and string.find(opt, WATCHED, 1, true) ~= nil or nil
end

local function read_state(ek, ...)
  local v = redis.call('HMGET', ek, 'phase', 'elig', 'lane', 'pri', 'att_due', 'deadline', 'retention', 'flow',
    'opt', ...)
  local h = {phase = v[1] or nil, elig = v[2] or nil, lane = v[3] or nil, pri = v[4] or ABSENT.pri,
    att_due = v[5] or nil, deadline = v[6] or nil, retention = v[7] or ABSENT.retention, flow = v[8] or nil,
    watch = watched(v[9])}
  for i = 1, select('#', ...) do
    if v[9 + i] then h[select(i, ...)] = v[9 + i] end
  end
  return h
end

-- Leave the index a live (non-terminal) state puts the execution in; the
-- deadline index is left only on the way to terminal. With `mv` (a batch),
-- the active state's index removals are deferred (moves.lua). An ended
-- lease's fields stay as a record of who ran the attempt (a lease is current
-- only while its execution is active: lease_check), and the next claim
-- overwrites them in place.
local function leave_live(ek, tag, eid, h, mv)
  if h.phase == 'runnable' then
    local name = RUNNABLE_INDEX[h.elig]
    if name == 'eligible' then
      redis.call('ZREM', eligible_key(tag, h.lane), eid)
    elseif name then
      redis.call('ZREM', idx_key(tag, name), eid)
    end
  elseif h.phase == 'active' then
    idx_rem(mv, tag, 'lease_expiry', eid)
    if h.att_due then idx_rem(mv, tag, 'attempt_timeout', eid) end
  elseif h.phase == 'suspended' then
    end_suspension(ek, tag, eid)
  end
end

-- Into the lane's eligible index, for a record that says runnable/eligible.
-- Announced to workers only when the index was empty: otherwise they already
-- know the partition has work. With `mv` (a batch), the move is deferred (and
-- so is the announcement).
local function index_eligible(tag, eid, lane, priority, now, mv)
  local key = eligible_key(tag, lane)
  if mv then return defer_zadd(mv, key, batch_eligible_score(mv, priority, now), eid) end
  local score = ms_text(eligible_score(priority, now))
  if redis.call('ZCARD', key) == 0 then
    redis.call('PUBLISH', READY_CHANNEL, lane .. ' ' .. tag)
    zadd_new_index(key, {score, eid}, score)
  else
    redis.call('ZADD', key, score, eid)
  end
end

-- Counts (core/src/counts.rs): the word a state is counted under is the
-- eligibility of a runnable record, the outcome of a terminal one, else the
-- phase; nil for a runnable record not placed yet (a new flow member).
local function counted(phase, elig, outcome)
  if phase == 'runnable' then return elig ~= '' and elig or nil end
  if phase == 'terminal' then return outcome end
  return phase
end

local ENDED = {success = true, failed = true, cancelled = true, expired = true, skipped = true}
-- The outcomes the per-minute series count.
local SERIES_OF = {success = SERIES.completed, failed = SERIES.failed}

-- '<lane>:<word>', made once per (lane, word) for the library's life.
local FIELDS = {}
local function field_of(lane, word)
  local t = FIELDS[lane]
  if not t then
    t = {}
    FIELDS[lane] = t
  end
  local f = t[word]
  if not f then
    f = lane .. ':' .. word
    t[word] = f
  end
  return f
end

-- Names made once: a partition's counts key for the library's life, its
-- series key and fields for the current minute.
local COUNTS_KEYS, SERIES_KEYS, SERIES_FIELDS, SERIES_MINUTE = {}, {}, {}, nil

local function counts_key_of(tag)
  local ck = COUNTS_KEYS[tag]
  if not ck then
    ck = counts_key(tag)
    COUNTS_KEYS[tag] = ck
  end
  return ck
end

-- A batch moves its executions alike: a run of equal moves (and of equal
-- series counts) is summed in these upvalues and handed to `count` once when
-- it ends, so a move costs a few comparisons, not two table updates.
local mv_tag, mv_lane, mv_from, mv_to, mv_n = nil, nil, nil, nil, 0
local se_tag, se_lane, se_kind, se_minute, se_n = nil, nil, nil, nil, 0

local function end_move_run(drop)
  if mv_n == 0 then return end
  if not drop then
    local ck = counts_key_of(mv_tag)
    if mv_from then count(ck, field_of(mv_lane, mv_from), -mv_n) end
    if mv_to then count(ck, field_of(mv_lane, mv_to), mv_n) end
  end
  mv_n = 0
end

local function end_series_run(drop)
  if se_n == 0 then return end
  if not drop then
    if se_minute ~= SERIES_MINUTE then SERIES_KEYS, SERIES_FIELDS, SERIES_MINUTE = {}, {}, se_minute end
    local sk = SERIES_KEYS[se_tag]
    if not sk then
      sk = series_key(se_tag, math.floor(se_minute / 60))
      SERIES_KEYS[se_tag] = sk
    end
    local f = field_of(se_lane, se_kind)
    local sf = SERIES_FIELDS[f]
    if not sf then
      sf = se_minute .. ':' .. f
      SERIES_FIELDS[f] = sf
    end
    count(sk, sf, se_n, SERIES_TTL_S)
  end
  se_n = 0
end

COUNT_RUNS[#COUNT_RUNS + 1] = end_move_run
COUNT_RUNS[#COUNT_RUNS + 1] = end_series_run

-- `n` executions of `lane` moved from the state counted as `from` to `to`
-- (nil: created, or purged): the partition's counters follow, at the call's
-- end (a batch that moves its executions alike counts them once).
local function count_moves(tag, lane, from, to, n)
  if mv_n > 0 and (tag ~= mv_tag or lane ~= mv_lane or from ~= mv_from or to ~= mv_to) then end_move_run(false) end
  mv_tag, mv_lane, mv_from, mv_to, mv_n = tag, lane, from, to, mv_n + n
end

-- A member of `flow` moved from `from` to `to`: the flow's live-state counts
-- follow (`now`: the call's time; a second read of the clock could differ).
local function count_flow_move(tag, flow, from, to, now)
  local fk = flow_key(tag, flow)
  if from and not ENDED[from] then count(fk, FLOW_LIVE_PREFIX .. from, -1) end
  if to and not ENDED[to] then count(fk, FLOW_LIVE_PREFIX .. to, 1) end
  redis.call('HSET', fk, 'changed', ms_text(now))
end

-- An execution of `lane` (a member of `flow`, if any) moved from the state
-- counted as `from` to `to`: the partition's counters and the flow's.
local function count_move(tag, lane, flow, from, to, now)
  if from == to or not lane then return end
  count_moves(tag, lane, from, to, 1)
  if flow then count_flow_move(tag, flow, from, to, now) end
end

-- A live execution joined `flow` in the state counted as `word`: the flow
-- counts it from now on.
local function count_joined(tag, flow, word, now)
  if not word or ENDED[word] then return end
  local fk = flow_key(tag, flow)
  count(fk, FLOW_LIVE_PREFIX .. word, 1)
  redis.call('HSET', fk, 'changed', ms_text(now))
end

-- One more of `kind` (SERIES: completed, failed, retried) in `lane` this
-- minute: field '<minute>:<lane>:<kind>' of the partition's hash of the hour.
local function count_series(tag, lane, kind, now)
  if not lane then return end
  local minute = math.floor(now / 60000)
  if se_n > 0 and (tag ~= se_tag or lane ~= se_lane or kind ~= se_kind or minute ~= se_minute) then
    end_series_run(false)
  end
  se_tag, se_lane, se_kind, se_minute, se_n = tag, lane, kind, minute, se_n + 1
end

-- The move out of `h` (a record's state as read_state reads it) into `to`.
local function count_from(tag, h, to, now)
  local lane, phase = h.lane, h.phase
  if not lane then return end
  -- (active, the common case, is tested first: this runs per transition)
  local from = phase == 'active' and phase or counted(phase, h.elig, h.outcome)
  if from == to then return end
  count_moves(tag, lane, from, to, 1)
  if h.flow then count_flow_move(tag, h.flow, from, to, now) end
end

-- runnable/eligible (index_eligible), from the state `h`.
local function make_eligible(ek, tag, eid, h, priority, now, mv)
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'eligible', 'due', '')
  count_from(tag, h, 'eligible', now)
  index_eligible(tag, eid, h.lane, priority, now, mv)
end

-- runnable/delayed until `due`, from the state `h` (at `now`); `...` are
-- extra field/value pairs to store.
local function make_delayed(mv, ek, tag, eid, h, now, due, ...)
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'delayed', 'due', due, ...)
  count_from(tag, h, 'delayed', now)
  idx_due(mv, tag, 'delayed', due, eid)
end

-- runnable/waiting_children, from the state `h`: until its parents decide
-- its join (flows.lua). The index score is when the dependency reconciler
-- next re-checks it.
local function make_waiting(ek, tag, eid, h, now)
  redis.call('HSET', ek, 'phase', 'runnable', 'elig', 'waiting_children', 'due', '')
  count_from(tag, h, 'waiting_children', now)
  redis.call('ZADD', idx_key(tag, 'waiting_children'), ms_text(now + WAITING_RECHECK_MS), eid)
end

-- The hooks between domains. Filled in by flows.lua: member_ended (a flow
-- member reached a terminal state), member_arg (ff_create's flow arguments
-- checked), member_created (a new member placed by its dependencies),
-- member_purged (a member's keys purged), purge_blocked (its edges are not
-- resolved yet).
local FLOW_HOOKS = {}
-- Filled in by admission.lua: admission_arg (ff_create's budgets, quotas and
-- capabilities checked and encoded), capabilities_arg (ff_claim's
-- capabilities read), needed_capabilities, capable (capability matching).
local ADMISSION_HOOKS = {}

-- Into a terminal state (from any live state `h`): out of the live indexes,
-- into the retention index; `...` are extra field/value pairs to store. With
-- `mv` (a batch), its index moves are deferred.
local function make_terminal(mv, ek, tag, eid, h, outcome, now, ...)
  leave_live(ek, tag, eid, h, mv)
  if h.deadline then idx_rem(mv, tag, 'deadline', eid) end
  if h.phase == 'active' then
    -- (an active record's elig and due are already empty: the claim left them so)
    redis.call('HSET', ek, 'phase', 'terminal', 'outcome', outcome, 'ended', mv and mv.now_s or ms_text(now), ...)
  else
    redis.call('HSET', ek, 'phase', 'terminal', 'elig', '', 'outcome', outcome, 'ended', mv and mv.now_s or ms_text(now),
      'due', '', ...)
  end
  idx_due(mv, tag, 'terminal', mv and batch_after(mv, h.retention) or now + (num(h.retention) or 0), eid)
  count_from(tag, h, outcome, now)
  local kind = SERIES_OF[outcome]
  if kind then count_series(tag, h.lane, kind, now) end
  if h.flow then FLOW_HOOKS.member_ended(tag, eid, h.flow, outcome, now) end
  if h.watch then redis.call('PUBLISH', ENDED_CHANNEL, eid) end
end

-- A stored retry policy (core/src/retry.rs): '<max>:f:<ms>' or
-- '<max>:e:<initial>:<cap>', then ':full' or ':equal' when jittered.
-- -> max, first delay, cap (the delay itself for 'f'), jitter ('' | 'full' |
-- 'equal'); nil when malformed.
local function parse_policy(p)
  if type(p) ~= 'string' then return nil end
  local body, jitter = string.match(p, '^(.*):(%a+)$')
  if body == nil then
    body, jitter = p, ''
  elseif jitter ~= 'full' and jitter ~= 'equal' then
    return nil
  end
  local max, a = string.match(body, '^(%d+):f:(%d+)$')
  if max then return tonumber(max), tonumber(a), tonumber(a), jitter end
  local b
  max, a, b = string.match(body, '^(%d+):e:(%d+):(%d+)$')
  if max then return tonumber(max), tonumber(a), tonumber(b), jitter end
  return nil
end

local function policy_ok(p)
  local max, a, cap = parse_policy(p)
  return max ~= nil and max <= MAX_RETRIES and a <= cap and cap <= MAX_BACKOFF_MS
end

-- a * b modulo 2^32 (as `bit` returns it, signed) for a 32-bit `a` and an
-- unsigned 32-bit constant `b`: b split into 16-bit halves keeps every
-- product below 2^48, exact in a double.
local function mul32(a, b)
  local hi, lo = math.floor(b / 65536), b % 65536
  return bit.tobit(bit.lshift(bit.tobit(a * hi), 16) + a * lo)
end

-- The jitter fraction of retry n of `eid`, in [0, 2^21): FNV-1a 32 over
-- '<eid>:<n>', murmur3's finalizer, the top 21 bits (core/src/retry.rs,
-- jitter_fraction: the same bits).
local function jitter_fraction(eid, n)
  local s = eid .. ':' .. n
  local h = 0x811c9dc5
  for i = 1, #s do
    h = mul32(bit.bxor(h, string.byte(s, i)), 0x01000193)
  end
  h = mul32(bit.bxor(h, bit.rshift(h, 16)), 0x85ebca6b)
  h = mul32(bit.bxor(h, bit.rshift(h, 13)), 0xc2b2ae35)
  return bit.rshift(bit.bxor(h, bit.rshift(h, 16)), 11)
end

-- Delay before retry number n (1-based) of `eid` under its stored policy:
-- RetryPolicy::delay_ms (core/src/retry.rs); the integration tests compare
-- them. A malformed policy (only a damaged record has one) waits 0.
local function retry_delay_ms(eid, policy, n)
  local _, d, cap, jitter = parse_policy(policy)
  if d == nil then return 0 end
  for _ = 2, n do
    if d == 0 or d >= cap then break end
    d = d * 2
  end
  if d > cap then d = cap end
  if jitter == '' then return d end
  -- uniform in [0, span] in steps of 2^-21 of it; (span + 1) * r < 2^53
  local r = jitter_fraction(eid, n)
  if jitter == 'full' then return math.floor((d + 1) * r / 2097152) end
  local half = math.floor(d / 2)
  return d - half + math.floor((half + 1) * r / 2097152)
end

-- The state dimensions as returned to the client (it derives the public state).
local function state_of(ek)
  local s = hmget(ek, 'phase', 'elig', 'outcome')
  return s.phase or '', s.elig or '', s.outcome or ''
end

-- The refusals of an execution id that is not one of the call's partition.
local NOT_EXEC_TARGET = 'execution:KEYS[1] must be ff:exec:<execution id> and match ARGV[1]'
local NOT_PARTITION_EID = 'execution:expected an execution id of the partition of KEYS[1]'

-- Validate the (eid, KEYS[1]) pair every per-execution function receives.
local function exec_target(keys, eid)
  local ek = keys[1]
  local tag = tag_of(ek or '')
  if tag == nil or not eid_ok(eid, tag) or ek ~= exec_key(eid) then
    return nil, nil, err('invalid_argument', NOT_EXEC_TARGET)
  end
  return ek, tag
end

-- Validate the KEYS[1] of a function anchored on an index of a partition:
-- the index and its partition's tag, or a refusal.
local function index_target(keys, name)
  local idx = keys[1]
  local tag = tag_of(idx or '')
  if tag == nil or idx ~= idx_key(tag, name) then
    return nil, nil, err('invalid_argument', 'index:KEYS[1] must be the ' .. name .. ' index of a partition')
  end
  return idx, tag
end

--- @export WATCHED, watched, FLOW_RECONCILE_GRACE_MS, WAITING_RECHECK_MS, eligible_score, batch_eligible_score,
--- @export read_state, leave_live, index_eligible, make_eligible, make_delayed, make_waiting,
--- @export counted, count_moves, count_flow_move, count_move, count_series, count_from, count_joined,
--- @export FLOW_HOOKS, ADMISSION_HOOKS, make_terminal, retry_delay_ms, policy_ok, state_of,
--- @export NOT_EXEC_TARGET, NOT_PARTITION_EID, exec_target, index_target

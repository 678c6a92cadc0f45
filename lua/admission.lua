-- Admission: budgets ({b:M} partitions, budgets.lua), quotas ({q:K}
-- partitions, quotas.lua), and the execution-side moves admission needs
-- (block, unblock: blocking.lua). This file holds what they share and fills
-- in execution.lua's ADMISSION_HOOKS.
--
-- An execution names the budgets and quotas it draws on at create (field
-- `adm` = '<budget,...>;<quota,...>'). Its own calls stay on its {fp:N} slot;
-- budgets and quotas are other slots, so admission is a second call made by
-- the claimer right after ff_claim (ff_admit per quota, a breach read per
-- budget) and, when refused, a fenced ff_block on the execution's slot. The
-- engine's unblock scanner reads budgets and quotas, then moves executions
-- now admissible back with ff_unblock (single-slot again).

local MAX_ADMISSION_NAMES, WAKE_CHANNEL = F.MAX_ADMISSION_NAMES, F.WAKE_CHANNEL
local err, name_ok = P.err, P.name_ok
local admission_key = K.admission_key
local ADMISSION_HOOKS = EXEC.ADMISSION_HOOKS

local MAX_DIMENSIONS = 16
local MAX_USAGE_DELTA = 1000000000000000 -- 1e15: keeps counters exact in Lua's doubles
-- Applied-report records of a budget are forgotten after a day without reports.
local SEEN_TTL_MS = 24 * 3600 * 1000
local MAX_SCAN_COUNT = 1000
local MAX_CAPABILITIES = 64

-- Tell the engine's unblock scanner that blocked executions may now be
-- admissible (a breach cleared, a quota place freed or grown, a worker with
-- new capabilities): it re-checks the partitions that hold blocked ones.
local function announce_admission()
  redis.call('PUBLISH', WAKE_CHANNEL, 'admission - 0')
end

-- Tell it an execution of partition `tag` was just blocked: re-checked at
-- once, so a change announced between the claimer's check and the block is
-- not missed.
local function announce_blocked(tag, now)
  redis.call('PUBLISH', WAKE_CHANNEL, 'blocked ' .. tag .. ' ' .. now)
end

local function part_tag(key, prefix)
  return string.match(key or '', '{' .. prefix .. ':%d+}')
end

-- KEYS[1] must be ff:<kind>:{<prefix>:N}:<name> and ARGV[1] the name.
local function named_target(keys, args, kind, prefix)
  local key, name = keys[1], args[1]
  local tag = part_tag(key, prefix)
  if tag == nil or not name_ok(name) or key ~= admission_key(kind, tag, name) then
    return nil, nil, nil, err('invalid_argument', kind .. ':KEYS[1] must be ff:' .. kind .. ':<partition>:<name> and match ARGV[1]')
  end
  return key, tag, name
end

-- A list of names separated by ',' ('' = none), at most MAX_ADMISSION_NAMES.
local function names_arg(v, what)
  if v == '' then return true end
  local n = 0
  for part in string.gmatch(v .. ',', '([^,]*),') do
    n = n + 1
    if not name_ok(part) or n > MAX_ADMISSION_NAMES then
      return nil, err('invalid_argument', what .. ':expected up to ' .. MAX_ADMISSION_NAMES .. ' names separated by commas')
    end
  end
  return true
end

-- ff_create's admission arguments -> the `adm` field value, or nil (none).
local function admission_arg(budgets, quotas, caps)
  budgets, quotas, caps = budgets or '', quotas or '', caps or ''
  local _, e = names_arg(budgets, 'budgets'); if e then return nil, e end
  _, e = names_arg(quotas, 'quotas'); if e then return nil, e end
  _, e = names_arg(caps, 'capabilities'); if e then return nil, e end
  if budgets == '' and quotas == '' and caps == '' then return nil end
  return budgets .. ';' .. quotas .. ';' .. caps
end

-- A worker's capabilities ('a,b') -> a set, or nil and a refusal.
local function capabilities_arg(v)
  if type(v) ~= 'string' then return {} end
  local set, n = {}, 0
  for part in string.gmatch(v, '([^,]+)') do
    n = n + 1
    if not name_ok(part) or n > MAX_CAPABILITIES then
      return nil, err('invalid_argument', 'capabilities:expected up to ' .. MAX_CAPABILITIES .. ' names separated by commas')
    end
    set[part] = true
  end
  return set
end

-- The capabilities part of an `adm` value ('' = none).
local function needed_capabilities(adm)
  return string.match(adm, '^[^;]*;[^;]*;([^;]*)$') or ''
end

-- Does the capability set `have` hold every name of `needs` ('a,b')?
local function capable(needs, have)
  for part in string.gmatch(needs, '([^,]+)') do
    if not have[part] then return false end
  end
  return true
end

ADMISSION_HOOKS.admission_arg = admission_arg
ADMISSION_HOOKS.capabilities_arg = capabilities_arg
ADMISSION_HOOKS.needed_capabilities = needed_capabilities
ADMISSION_HOOKS.capable = capable

--- @export MAX_DIMENSIONS, MAX_USAGE_DELTA, SEEN_TTL_MS, MAX_SCAN_COUNT, announce_admission,
--- @export announce_blocked, part_tag, named_target, capabilities_arg

-- Waitpoint helpers the execution lifecycle needs (loaded before execution.lua:
-- leaving the suspended phase closes the suspension's waitpoints) and the
-- waitpoint tokens. The functions themselves are in suspension.lua.
--
-- A waitpoint `ff:wp:{fp:N}:<32 hex>` (same partition as its execution):
--   eid, state (pending | active | closed | expired), created, expires (pending
--   only), n (signals so far), names (',a,b,': distinct signal names), and per
--   signal i: s<i> name, p<i> payload, m<i> '<time>|<effect>|<idempotency key>',
--   plus i:<idempotency key> = i.
-- A suspended execution holds susp_wps (comma list), susp_cond, susp_tb
-- (timeout behaviour) and susp_due (absent: no timeout).

local err, hmget, num = P.err, P.hmget, P.num
local idx_key, secret_key, wp_key = K.idx_key, K.secret_key, K.wp_key
local hex_to_bytes, hex_to_words, hmac_hex = HMAC.hex_to_bytes, HMAC.hex_to_words, HMAC.hmac_hex

local SUSPENSION_FIELDS = {'susp_wps', 'susp_cond', 'susp_tb', 'susp_due', 'susp_at'}

-- Leave the suspended phase: its waitpoints close, its timeout entry goes.
local function end_suspension(ek, tag, eid)
  local wps = redis.call('HGET', ek, 'susp_wps') or ''
  for wpid in string.gmatch(wps, '[0-9a-f]+') do
    local wk = wp_key(tag, wpid)
    if redis.call('HGET', wk, 'state') == 'active' then redis.call('HSET', wk, 'state', 'closed') end
  end
  redis.call('ZREM', idx_key(tag, 'suspension_timeout'), eid)
  redis.call('HDEL', ek, unpack(SUSPENSION_FIELDS))
end

-- Tokens: '<kid>.<64 hex>', the HMAC-SHA256 under key <kid> of the waitpoint's
-- identity (partition tag, execution id and waitpoint id as bytes: one block).
-- The keyring (secret_key) holds `cur` (the kid new tokens use), k:<kid> (the
-- key's HMAC states, 128 hex) and x:<kid> (when a retired key stops being
-- accepted, server ms).

local function token_message(tag, eid, wpid)
  return tag .. hex_to_bytes(string.sub(eid, #tag + 2)) .. hex_to_bytes(wpid)
end

local function mac_with(states, tag, eid, wpid)
  local inner, outer = hex_to_words(string.sub(states, 1, 64)), hex_to_words(string.sub(states, 65, 128))
  if inner == nil or outer == nil then return nil end
  return hmac_hex(inner, outer, token_message(tag, eid, wpid))
end

-- The token of a waitpoint under the current key, or nil and a refusal.
local function make_token(tag, eid, wpid)
  local ring = redis.call('HGET', secret_key(tag), 'cur')
  local states = ring and redis.call('HGET', secret_key(tag), 'k:' .. ring)
  local mac = states and mac_with(states, tag, eid, wpid)
  if not mac then return nil, err('no_secret', 'no waitpoint secret; rotate one in first') end
  return ring .. '.' .. mac
end

-- nil when `token` proves the waitpoint, else a refusal (changes nothing).
local function check_token(tag, eid, wpid, token, now)
  local kid, mac = string.match(token or '', '^([%w_%-]+)%.(%x+)$')
  if not kid or #kid > 32 or #mac ~= 64 then return err('invalid_token', 'malformed') end
  local ring = hmget(secret_key(tag), 'k:' .. kid, 'x:' .. kid)
  local states = ring['k:' .. kid]
  if not states then return err('invalid_token', 'unknown key') end
  local exp = ring['x:' .. kid]
  if exp and (num(exp) or 0) <= now then return err('invalid_token', 'expired key') end
  if mac_with(states, tag, eid, wpid) ~= mac then return err('invalid_token', 'mismatch') end
  return nil
end

--- @export end_suspension, make_token, check_token

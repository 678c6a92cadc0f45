-- SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) in Lua 5.1 over the `bit`
-- library (LuaBitOp: 32-bit results, signed). Redis's Lua has no hash function
-- that is not SHA-1; waitpoint tokens need a keyed MAC.
--
-- Words are kept as LuaBitOp numbers (signed 32-bit; the constants below are
-- unsigned, which is the same modulo 2^32); sums of a few words stay exact in
-- a double and are wrapped with bit.tobit.
--
-- Self-contained (only `bit` and `string`): tests load this file on its own.



-- Redis gives functions `bit` at run time only: bound on first use.
local band, bor, bxor, bnot, lshift, rshift, ror, tobit, tohex

local function bind_bit()
  if band then return end
  band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
  lshift, rshift, ror, tobit, tohex = bit.lshift, bit.rshift, bit.ror, bit.tobit, bit.tohex
end

local SHA256_K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local SHA256_IV = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

-- Compress the 64-byte block of `s` starting after byte `off` into state `H`.
local function sha256_block(H, s, off)
  local w = {}
  for i = 1, 16 do
    local a, b, c, d = string.byte(s, off + 4 * i - 3, off + 4 * i)
    w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
  end
  for i = 17, 64 do
    local v15, v2 = w[i - 15], w[i - 2]
    local s0 = bxor(ror(v15, 7), ror(v15, 18), rshift(v15, 3))
    local s1 = bxor(ror(v2, 17), ror(v2, 19), rshift(v2, 10))
    w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for i = 1, 64 do
    local s1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
    local ch = bxor(band(e, f), band(bnot(e), g))
    local t1 = h + s1 + ch + SHA256_K[i] + w[i]
    local s0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
    local maj = bxor(band(a, b), band(a, c), band(b, c))
    h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + s0 + maj)
  end
  H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
  H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
end

-- The state after hashing `msg`, continuing from state `H0` that has already
-- absorbed `prefix_len` bytes (a multiple of 64).
local function sha256_continue(H0, prefix_len, msg)
  bind_bit()
  local H = {H0[1], H0[2], H0[3], H0[4], H0[5], H0[6], H0[7], H0[8]}
  local bits = (prefix_len + #msg) * 8
  local hi, lo = math.floor(bits / 4294967296), bits % 4294967296
  local padded = msg .. '\128' .. string.rep('\0', (55 - prefix_len - #msg) % 64)
    .. string.char(band(rshift(hi, 24), 255), band(rshift(hi, 16), 255), band(rshift(hi, 8), 255), band(hi, 255),
      band(rshift(lo, 24), 255), band(rshift(lo, 16), 255), band(rshift(lo, 8), 255), band(lo, 255))
  for off = 0, #padded - 1, 64 do sha256_block(H, padded, off) end
  return H
end

local function words_to_bytes(H)
  local out = {}
  for i = 1, 8 do
    local x = H[i]
    out[i] = string.char(band(rshift(x, 24), 255), band(rshift(x, 16), 255), band(rshift(x, 8), 255), band(x, 255))
  end
  return table.concat(out)
end

local function words_to_hex(H)
  bind_bit()
  local out = {}
  for i = 1, 8 do out[i] = tohex(H[i], 8) end
  return table.concat(out)
end

-- Eight words from 64 hex digits, or nil.
local function hex_to_words(s)
  bind_bit()
  if type(s) ~= 'string' or #s ~= 64 or string.find(s, '[^0-9a-f]') then return nil end
  local H = {}
  for i = 1, 8 do H[i] = tobit(tonumber(string.sub(s, 8 * i - 7, 8 * i), 16)) end
  return H
end

local function sha256_hex(msg)
  return words_to_hex(sha256_continue(SHA256_IV, 0, msg))
end

-- The HMAC key schedule: the states after the inner and outer padded key
-- blocks. Kept instead of the key, each MAC then costs two compressions.
local function hmac_states(key)
  bind_bit()
  if #key > 64 then key = words_to_bytes(sha256_continue(SHA256_IV, 0, key)) end
  key = key .. string.rep('\0', 64 - #key)
  local ipad, opad = {}, {}
  for i = 1, 64 do
    local k = string.byte(key, i)
    ipad[i] = string.char(bxor(k, 0x36))
    opad[i] = string.char(bxor(k, 0x5c))
  end
  local inner = {unpack(SHA256_IV)}
  local outer = {unpack(SHA256_IV)}
  sha256_block(inner, table.concat(ipad), 0)
  sha256_block(outer, table.concat(opad), 0)
  return inner, outer
end

-- HMAC-SHA256 of `msg` under the states of hmac_states, as 64 hex digits.
local function hmac_hex(inner, outer, msg)
  local ih = words_to_bytes(sha256_continue(inner, 64, msg))
  return words_to_hex(sha256_continue(outer, 64, ih))
end

-- Bytes from an even number of hex digits, or nil.
local function hex_to_bytes(s)
  if type(s) ~= 'string' or #s % 2 ~= 0 or string.find(s, '[^0-9a-f]') then return nil end
  return (string.gsub(s, '..', function(h) return string.char(tonumber(h, 16)) end))
end

--- @export words_to_hex, hex_to_words, hmac_states, hmac_hex, hex_to_bytes

-- Decides one request against its GCRA buckets, all or nothing (after
-- throttle_common.lua).
--
-- KEYS: the buckets, most specific first.
-- ARGV[1..3]: the time (see throttle_common.lua).
-- ARGV[3 + i] for bucket i: three little-endian doubles (struct '<ddd'),
--   t (ns per token), tau ((burst-1) t), cap (burst t). Binary, because
--   Redis parses a number given as text with strtod, which costs more than
--   a Redis command; one argument instead of three also saves two Lua
--   strings per bucket.
--
-- Tokens outstanding in replicas' leases count as taken. A bucket expires
-- once it would be full again and no lease is out.
--
-- Returns one integer, held * 16 + bucket * 2 + admitted: `bucket` the
-- 0-based index of the bucket decided (the refusing one, or the admitted
-- one with the fewest tokens left, the first such), `held` its debt plus
-- its leased tokens in ns after the call (the time until it is full
-- again). The caller, which knows t, tau and cap, derives the tokens left
-- (floor((cap - held) / t)) and the retry after (held - tau). When held is
-- 2^48 or more (the integer would lose precision), {held, bucket * 2 +
-- admitted} instead.
--
-- Lean on purpose (this is the call every non-leased decision makes): one
-- HGET and one HSET per bucket, no table per bucket for a single bucket,
-- the parameters read once, no closure of its own, and an integer reply (a
-- table reply costs Redis about as much as a command). A bucket full and
-- without leases is deleted rather than written: that loses nothing.

local n = #KEYS
-- For more than one bucket, each one's state between the two passes, eight
-- slots a bucket: tat, dirty, debt, o, e, x, t, cap.
local st
if n > 1 then st = {} end
local tat, dirty, debt, o, e, x, t, cap
for i = 1, n do
  local tau
  t, tau, cap = struct.unpack('<ddd', ARGV[3 + i])
  local key = KEYS[i]
  local v = redis.call('HGET', key, 'b')
  tat, dirty, o, e, x = nil, false, 0, 0, 0
  if v then
    local s, ns
    s, ns, o, e, x = struct.unpack('<ddddd', v)
    if s > 0 then tat = (s - now_s) * 1000000000 + ns - now_ns end
    if e ~= 0 and e <= now_ms then
      local b = {tat = tat, o = o, e = e}
      sweep(key, b, t)
      tat, o, e, dirty = b.tat, b.o, b.e, true
    end
  end
  local raw = 0
  if tat and tat > 0 then raw = tat end
  debt = raw
  if debt > cap then debt = cap end
  local held = debt + o * t
  if held > tau then
    -- Refused. A debt beyond a whole bucket (the settings shrank) is capped
    -- so the bucket refills under the new settings from now on.
    if raw > cap or dirty then
      if debt <= 0 and o <= 0 then
        redis.call('DEL', key)
      else
        write(key, debt, o, e, x, t)
      end
    end
    if held < 281474976710656 then return held * 16 + (i - 1) * 2 end
    return {held, (i - 1) * 2}
  end
  if st then
    local j = 8 * i
    st[j - 7], st[j - 6], st[j - 5], st[j - 4] = tat, dirty, debt, o
    st[j - 3], st[j - 2], st[j - 1], st[j] = e, x, t, cap
  end
end

local best, best_left, best_held = 0, -1, 0
for i = 1, n do
  if st then
    local j = 8 * i
    tat, dirty, debt, o = st[j - 7], st[j - 6], st[j - 5], st[j - 4]
    e, x, t, cap = st[j - 3], st[j - 2], st[j - 1], st[j]
  end
  debt = debt + t
  if debt <= 0 and o <= 0 then
    if tat or dirty then redis.call('DEL', KEYS[i]) end
  else
    write(KEYS[i], debt, o, e, x, t)
  end
  local held = debt + o * t
  local left = math.floor((cap - held) / t)
  if best_left < 0 or left < best_left then
    best, best_left, best_held = i - 1, left, held
  end
end
if best_held < 281474976710656 then return best_held * 16 + best * 2 + 1 end
return {best_held, best * 2 + 1}

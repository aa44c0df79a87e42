-- Decides one request against its GCRA buckets, all or nothing.
--
-- KEYS: the buckets, most specific first.
-- ARGV[1]: 'r' to read the time from Redis (TIME), or 'c' to use ARGV[2..3].
-- ARGV[2], ARGV[3]: the caller's time, whole seconds and nanoseconds.
-- ARGV[3i+1 .. 3i+3] for bucket i: t (ns per token), tau ((burst-1) t), cap (burst t).
--
-- A bucket is stored as "S:N", its theoretical arrival time being
-- S * 1e9 + N nanoseconds; S is the second it was written at, so every
-- number stays far below 2^53 and Lua's doubles compute it exactly. A missing
-- bucket is full. A bucket expires when it would be full again.
--
-- Returns {admitted, bucket index (0-based), tokens left, retry after ns, full after ns}.
local now_s, now_ns
if ARGV[1] == 'r' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1])
  now_ns = tonumber(t[2]) * 1000
else
  now_s = tonumber(ARGV[2])
  now_ns = tonumber(ARGV[3])
end

local function debt_of(value)
  if not value then return 0 end
  local sep = string.find(value, ':', 1, true)
  if not sep then return 0 end
  local s = tonumber(string.sub(value, 1, sep - 1))
  local ns = tonumber(string.sub(value, sep + 1))
  if not s or not ns then return 0 end
  local debt = (s - now_s) * 1000000000 + ns - now_ns
  if debt < 0 then return 0 end
  return debt
end

local function store(key, debt)
  if debt <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, string.format('%.0f:%.0f', now_s, now_ns + debt),
      'PX', string.format('%.0f', math.floor(debt / 1000000) + 1))
  end
end

local n = #KEYS
local debts = {}
for i = 1, n do
  local tau = tonumber(ARGV[3 * i + 2])
  local cap = tonumber(ARGV[3 * i + 3])
  local raw = debt_of(redis.call('GET', KEYS[i]))
  local debt = raw
  if debt > cap then debt = cap end
  if debt > tau then
    -- Refused. A debt beyond a whole bucket (the settings shrank) is capped
    -- so the bucket refills under the new settings from now on.
    if raw > cap then store(KEYS[i], cap) end
    return {0, i - 1, 0, debt - tau, debt}
  end
  debts[i] = debt
end

local best, best_left, best_full = 0, -1, 0
for i = 1, n do
  local t = tonumber(ARGV[3 * i + 1])
  local cap = tonumber(ARGV[3 * i + 3])
  local debt = debts[i] + t
  store(KEYS[i], debt)
  local left = math.floor((cap - debt) / t)
  if best_left < 0 or left < best_left then
    best, best_left, best_full = i - 1, left, debt
  end
end
return {1, best, best_left, 0, best_full}

-- Decides one request against its GCRA buckets, all or nothing (after
-- throttle_common.lua).
--
-- KEYS: the buckets, most specific first.
-- ARGV[1..3]: the time (see throttle_common.lua).
-- ARGV[3i+1 .. 3i+3] for bucket i: t (ns per token), tau ((burst-1) t), cap (burst t).
--
-- Tokens outstanding in replicas' leases count as taken. A bucket expires
-- once it would be full again and no lease is out.
--
-- Returns {admitted, bucket index (0-based), tokens left, retry after ns, full after ns}.
local n = #KEYS
local buckets, debts = {}, {}
for i = 1, n do
  local t = tonumber(ARGV[3 * i + 1])
  local tau = tonumber(ARGV[3 * i + 2])
  local cap = tonumber(ARGV[3 * i + 3])
  local b = load(KEYS[i])
  sweep(KEYS[i], b, t)
  local raw = debt_of(b)
  local debt = raw
  if debt > cap then debt = cap end
  local held = debt + b.o * t
  if held > tau then
    -- Refused. A debt beyond a whole bucket (the settings shrank) is capped
    -- so the bucket refills under the new settings from now on.
    if raw > cap or b.dirty then save(KEYS[i], b, debt, t, nil, {}) end
    return {0, i - 1, 0, held - tau, held}
  end
  buckets[i], debts[i] = b, debt
end

local best, best_left, best_full = 0, -1, 0
for i = 1, n do
  local t = tonumber(ARGV[3 * i + 1])
  local cap = tonumber(ARGV[3 * i + 3])
  local b = buckets[i]
  local debt = debts[i] + t
  save(KEYS[i], b, debt, t, nil, {})
  local held = debt + b.o * t
  local left = math.floor((cap - held) / t)
  if best_left < 0 or left < best_left then
    best, best_left, best_full = i - 1, left, held
  end
end
return {1, best, best_left, 0, best_full}

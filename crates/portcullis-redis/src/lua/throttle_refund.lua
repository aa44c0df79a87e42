-- Gives back the token an admitted request took from each bucket (used on
-- Redis Cluster when a later group of buckets, on another slot, refused).
--
-- KEYS: the buckets. ARGV as throttle_acquire.lua; only t is read.
local now_s, now_ns
if ARGV[1] == 'r' then
  local t = redis.call('TIME')
  now_s = tonumber(t[1])
  now_ns = tonumber(t[2]) * 1000
else
  now_s = tonumber(ARGV[2])
  now_ns = tonumber(ARGV[3])
end
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value then
    local sep = string.find(value, ':', 1, true)
    local s = tonumber(string.sub(value, 1, sep - 1))
    local ns = tonumber(string.sub(value, sep + 1))
    local debt = (s - now_s) * 1000000000 + ns - now_ns - tonumber(ARGV[3 * i + 1])
    if debt <= 0 then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f:%.0f', now_s, now_ns + debt),
        'PX', string.format('%.0f', math.floor(debt / 1000000) + 1))
    end
  end
end
return #KEYS

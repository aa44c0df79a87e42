-- The keys of a plan that have a counter or usage records.
-- KEYS[1] the plan's set of counted keys; ARGV[1] the counter key prefix,
-- ARGV[2] the usage record key prefix (each followed by the key id).
local out = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. key) == 1 or redis.call('EXISTS', ARGV[2] .. key) == 1 then
    out[#out + 1] = key
  end
end
return out

-- The control plane's consistent reads, one atomic step each.
-- KEYS[1] version, [2] keys (id -> record), [3] ids (sorted set), [4] digests
-- (digest -> id), [5] plans (id -> record). ARGV[1] the read, ARGV[2] the
-- prefix of association sets ("...:kp:" key -> plans; "...:pk:" plan -> keys is
-- ARGV[3]), then the read's arguments.
local read = ARGV[1]
local kp, pk = ARGV[2], ARGV[3]
if read == 'snapshot' then
  local assoc = {}
  local plans = redis.call('HGETALL', KEYS[5])
  for i = 1, #plans, 2 do
    for _, key in ipairs(redis.call('SMEMBERS', pk .. plans[i])) do
      assoc[#assoc + 1] = plans[i]
      assoc[#assoc + 1] = key
    end
  end
  return { redis.call('GET', KEYS[1]) or '0', redis.call('HVALS', KEYS[2]), plans, assoc }
elseif read == 'find' then
  local id = redis.call('HGET', KEYS[4], ARGV[4])
  if not id then return false end
  return redis.call('HGET', KEYS[2], id)
elseif read == 'keys_after' then
  local min = '-'
  if ARGV[4] ~= '' then min = '(' .. ARGV[4] end
  local ids = redis.call('ZRANGEBYLEX', KEYS[3], min, '+', 'LIMIT', 0, tonumber(ARGV[5]))
  if #ids == 0 then return {} end
  return redis.call('HMGET', KEYS[2], unpack(ids))
elseif read == 'plans' then
  if ARGV[4] == '' then return { 1, redis.call('HVALS', KEYS[5]) } end
  if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 0 then return { 0, {} } end
  local ids = redis.call('SMEMBERS', kp .. ARGV[4])
  if #ids == 0 then return { 1, {} } end
  return { 1, redis.call('HMGET', KEYS[5], unpack(ids)) }
elseif read == 'plan_keys' then
  if redis.call('HEXISTS', KEYS[5], ARGV[4]) == 0 then return { 0, {} } end
  local ids = redis.call('SMEMBERS', pk .. ARGV[4])
  if #ids == 0 then return { 1, {} } end
  return { 1, redis.call('HMGET', KEYS[2], unpack(ids)) }
end
return redis.error_reply('control plane: unknown read ' .. tostring(read))

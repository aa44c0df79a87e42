-- A change to keys, plans or associations, validated by the caller against the
-- state it read at configuration version ARGV[1]: applied only if the version is
-- still that one (no other change came between), then the version is raised and
-- announced. Optimistic concurrency, as WATCH/MULTI/EXEC, in one command.
--
-- KEYS[1] the version key; KEYS[2..] the keys the operations name.
-- ARGV[1] expected version, ARGV[2] the change channel, then operations of four
-- arguments each: name, index into KEYS, field or member, value.
-- Answers the new version, or -1 when the version moved (the caller retries).
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return -1 end
local ops = { hset = true, hdel = true, sadd = true, srem = true, zadd = true, zrem = true, del = true }
for i = 3, #ARGV, 4 do
  if not ops[ARGV[i]] or not KEYS[tonumber(ARGV[i + 1])] then
    return redis.error_reply('control plane: bad operation ' .. tostring(ARGV[i]))
  end
end
for i = 3, #ARGV, 4 do
  local op, key, field, value = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'hset' then redis.call('HSET', key, field, value)
  elseif op == 'hdel' then redis.call('HDEL', key, field)
  elseif op == 'sadd' then redis.call('SADD', key, field)
  elseif op == 'srem' then redis.call('SREM', key, field)
  elseif op == 'zadd' then redis.call('ZADD', key, 0, field)
  elseif op == 'zrem' then redis.call('ZREM', key, field)
  else redis.call('DEL', key) end
end
local version = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], version)
return version

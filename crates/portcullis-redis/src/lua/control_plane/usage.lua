-- GetUsage's state of one counter, read atomically.
-- KEYS[1] counter hash, KEYS[2] usage records. Answers both as flat field lists.
return { redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]) }

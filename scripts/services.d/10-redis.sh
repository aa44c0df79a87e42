# Sourced by scripts/test.sh: a Redis 7 server on 127.0.0.1:6379.
#
# Uses the Redis already answering there, else installs redis-server from
# Debian's packages and starts one that keeps nothing on disk. Exports
# REDIS_URL.
redis_ping() {
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
    else
        # Without redis-cli, speak RESP over bash's /dev/tcp.
        (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null
    fi
}

if ! redis_ping; then
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "installing redis-server"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools) >/dev/null
    fi
    mkdir -p /tmp/portcullis-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /tmp/portcullis-redis --logfile /tmp/portcullis-redis/redis.log
    for _ in $(seq 1 50); do redis_ping && break; sleep 0.1; done
fi
redis_ping || { echo "Redis did not start on 127.0.0.1:6379" >&2; return 1; }
export REDIS_URL="redis://127.0.0.1:6379"
echo "REDIS_URL=$REDIS_URL"

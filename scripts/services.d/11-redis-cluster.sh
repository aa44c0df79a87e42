# Sourced by scripts/test.sh: a 3-master Redis Cluster on 127.0.0.1:7000-7002.
#
# Reuses a healthy cluster already running there; otherwise starts three
# cluster-enabled redis-server processes that keep nothing on disk and joins
# them with `redis-cli --cluster create`. Needs 10-redis.sh first (it installs
# redis-server and redis-cli when missing). Exports REDIS_CLUSTER_URLS.
PORTCULLIS_CLUSTER_PORTS="7000 7001 7002"

cluster_ok() {
    redis-cli -h 127.0.0.1 -p 7000 cluster info 2>/dev/null | grep -q "cluster_state:ok"
}

if ! cluster_ok; then
    if ! command -v redis-cli >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools) >/dev/null
    fi
    for port in $PORTCULLIS_CLUSTER_PORTS; do
        redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
        dir="/tmp/portcullis-redis-cluster/$port"
        rm -rf "$dir" && mkdir -p "$dir"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
            --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
            --cluster-node-timeout 2000 --save "" --appendonly no \
            --dir "$dir" --logfile "$dir/redis.log"
    done
    for port in $PORTCULLIS_CLUSTER_PORTS; do
        for _ in $(seq 1 50); do
            redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
            sleep 0.1
        done
    done
    redis-cli --cluster create 127.0.0.1:7000 127.0.0.1:7001 127.0.0.1:7002 \
        --cluster-replicas 0 --cluster-yes >/dev/null
    for _ in $(seq 1 100); do cluster_ok && break; sleep 0.1; done
fi
cluster_ok || { echo "Redis Cluster did not form on 127.0.0.1:7000-7002" >&2; return 1; }
export REDIS_CLUSTER_URLS="redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002"
echo "REDIS_CLUSTER_URLS=$REDIS_CLUSTER_URLS"

#!/usr/bin/env bash
# Runs a three-broker Apache Kafka cluster (KRaft, each node both broker and
# controller) on 127.0.0.1, from the same Maven jars as scripts/kafka.sh, for
# fault tests: replicated topics whose leaders move when a broker dies.
#
#   scripts/kafka-cluster.sh up          start the three nodes and wait until all three serve
#   scripts/kafka-cluster.sh down        stop them and delete their data
#   scripts/kafka-cluster.sh kill N      SIGKILL node N (1-3)
#   scripts/kafka-cluster.sh start N     start node N again on its data and wait until it serves
#   scripts/kafka-cluster.sh restart N   kill N, then start N
#   scripts/kafka-cluster.sh brokers     print the bootstrap list (for KAFKA_BROKERS)
#   scripts/kafka-cluster.sh controller  print the node id of the active controller
#
# Node N listens on 127.0.0.1:2909N (clients) and 127.0.0.1:2919N (controller).
# Topics default to replication factor 3 with min.insync.replicas=2, so a
# topic survives one dead broker without losing an acknowledged write.
#
# Environment (all optional):
#   ORDO_KAFKA_CLUSTER_DATA  data, logs, pids (default /tmp/ordo-kafka-cluster)
#   ORDO_KAFKA_CACHE         jar cache, as for scripts/kafka.sh
#   ORDO_KAFKA_TIMEOUT       seconds to wait for the nodes (default 120)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=detach.sh
source "$here/detach.sh"
pom=$here/kafka/pom.xml
log4j_conf=$here/kafka/log4j2.properties
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
cache=${ORDO_KAFKA_CACHE:-$HOME/.cache/ordo-kafka/$version}
data=${ORDO_KAFKA_CLUSTER_DATA:-/tmp/ordo-kafka-cluster}
timeout=${ORDO_KAFKA_TIMEOUT:-120}
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
classpath="$cache/lib/*"
nodes=(1 2 3)
brokers=127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093
voters=1@127.0.0.1:29191,2@127.0.0.1:29192,3@127.0.0.1:29193

case $data in
  "" | / | "$HOME" | "$HOME"/) echo "kafka-cluster: refusing to use ORDO_KAFKA_CLUSTER_DATA=$data" >&2; exit 2 ;;
esac

say() { echo "kafka-cluster: $*"; }
fail() { say "$*" >&2; exit 1; }

node_pid() {
  local f=$data/node$1/kafka.pid pid
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  ps -p "$pid" -o args= 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

write_config() {
  local n=$1 dir=$data/node$1
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:2909$n,CONTROLLER://127.0.0.1:2919$n
advertised.listeners=PLAINTEXT://127.0.0.1:2909$n
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
CONF
}

# A node serves once a metadata request through it lists the brokers;
# the cluster serves once a replicated topic can be created.
cluster_answers() {
  "$java" -cp "$classpath" org.apache.kafka.tools.TopicCommand --bootstrap-server "$brokers" \
    --command-config "$data/probe.properties" --create --if-not-exists \
    --topic __ordo_cluster_probe --partitions 3 --replication-factor 3 >/dev/null 2>&1
}

# node_answers N: node N itself answers a metadata request.
node_answers() {
  "$java" -cp "$classpath" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:2909$1" \
    --command-config "$data/probe.properties" --list >/dev/null 2>&1
}

# The active controller is the KRaft quorum's leader. (A Metadata response's
# controller id is no help: under KRaft it names a random broker.)
controller() {
  local out
  out=$("$java" -Dlog4j2.configurationFile="$log4j_conf" -cp "$classpath" org.apache.kafka.tools.MetadataQuorumCommand \
    --bootstrap-server "$brokers" --command-config "$data/probe.properties" describe --status 2>&1) ||
    fail "describing the quorum failed: $out"
  sed -n 's/^LeaderId:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$out" | grep . || fail "no LeaderId in: $out"
}

launch() {
  local n=$1 dir=$data/node$1 pid
  detach "$dir/kafka.log" "$java" -Xms192m -Xmx384m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j_conf" \
    -cp "$classpath" kafka.Kafka "$dir/server.properties"
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
  say "node $n: pid $pid (log: $dir/kafka.log)"
}

wait_serving() {
  local deadline=$((SECONDS + timeout))
  until cluster_answers; do
    ((SECONDS < deadline)) || fail "the cluster did not serve within ${timeout}s; see $data/node*/kafka.log"
    sleep 1
  done
}

up() {
  "$here/kafka.sh" fetch
  local n running=0
  for n in "${nodes[@]}"; do node_pid "$n" >/dev/null && running=$((running + 1)); done
  if ((running == ${#nodes[@]})); then
    say "cluster from an earlier 'up' is running; checking it serves"
    wait_serving
    say "ready: KAFKA_BROKERS=$brokers"
    return 0
  fi
  ((running == 0)) || fail "only $running of ${#nodes[@]} nodes run; 'down' first"
  rm -rf "$data"
  mkdir -p "$data"
  printf 'request.timeout.ms=3000\ndefault.api.timeout.ms=8000\n' >"$data/probe.properties"
  local cluster_id started=$SECONDS
  cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  for n in "${nodes[@]}"; do
    write_config "$n"
    "$java" -Dlog4j2.configurationFile="$log4j_conf" -cp "$classpath" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$data/node$n/server.properties" \
      >"$data/node$n/format.log" 2>&1 || { cat "$data/node$n/format.log" >&2; fail "formatting node $n failed"; }
  done
  for n in "${nodes[@]}"; do launch "$n"; done
  wait_serving
  say "ready in $((SECONDS - started))s: KAFKA_BROKERS=$brokers"
}

kill_node() {
  local pid
  pid=$(node_pid "$1") || fail "node $1 is not running"
  kill -KILL "$pid"
  while ps -p "$pid" >/dev/null 2>&1; do sleep 0.1; done
  say "node $1 killed (pid $pid)"
}

start_node() {
  node_pid "$1" >/dev/null && fail "node $1 is already running"
  [[ -f $data/node$1/server.properties ]] || fail "node $1 has no data; 'up' first"
  launch "$1"
  local deadline=$((SECONDS + timeout))
  until node_answers "$1"; do
    ((SECONDS < deadline)) || fail "node $1 did not serve within ${timeout}s; see $data/node$1/kafka.log"
    sleep 1
  done
  wait_serving
  say "node $1 serves again"
}

down() {
  local n pid
  for n in "${nodes[@]}"; do
    if pid=$(node_pid "$n"); then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for n in "${nodes[@]}"; do
    if pid=$(node_pid "$n"); then
      for _ in $(seq 30); do ps -p "$pid" >/dev/null 2>&1 || break; sleep 1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$data"
  say "stopped"
}

node_arg() {
  [[ ${1:-} =~ ^[1-3]$ ]] || { echo "usage: $0 kill|start|restart 1|2|3" >&2; exit 2; }
}

case ${1:-} in
  up) up ;;
  down) down ;;
  kill) node_arg "${2:-}"; kill_node "$2" ;;
  start) node_arg "${2:-}"; start_node "$2" ;;
  restart) node_arg "${2:-}"; kill_node "$2"; start_node "$2" ;;
  brokers) echo "$brokers" ;;
  controller) controller ;;
  *) echo "usage: $0 up|down|kill N|start N|restart N|brokers|controller" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker on 127.0.0.1 for tests and CI.
#
#   scripts/kafka.sh up     start it (or reuse a running one) and wait until it answers
#   scripts/kafka.sh down   stop it and delete its data
#   scripts/kafka.sh restart  stop it and start it again on the same data
#   scripts/kafka.sh fetch  fetch the jars only (scripts/kafka-cluster.sh uses them)
#
# The jars come from Maven Central through scripts/kafka/pom.xml because that is
# the only place CI can download Kafka from; they are cached outside the repo so
# only the first `up` on a machine pays for the download.
#
# Environment (all optional):
#   ORDO_KAFKA_CACHE    jar cache        (default ~/.cache/ordo-kafka/<version>)
#   ORDO_KAFKA_DATA     data, log, pid   (default /tmp/ordo-kafka)
#   ORDO_KAFKA_PORT     client port      (default 9092; the controller uses port+1)
#   ORDO_KAFKA_SASL_PORT  SASL_SSL port  (default port+2)
#
# Besides PLAINTEXT on ORDO_KAFKA_PORT the broker has a SASL_SSL listener, for
# the security tests: a throwaway CA and server certificate made at `up`
# (CA in $ORDO_KAFKA_DATA/tls/ca.pem), PLAIN user ordo-plain / ordo-plain-secret,
# SCRAM-SHA-256 and SCRAM-SHA-512 user ordo-scram / ordo-scram-secret. `up`
# ends by printing the variables the tests read:
#   KAFKA_SASL_SSL_BROKERS=127.0.0.1:9094 KAFKA_SASL_SSL_CA=/tmp/ordo-kafka/tls/ca.pem
#   ORDO_KAFKA_TIMEOUT  seconds to wait for the broker to answer (default 90)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=detach.sh
source "$here/detach.sh"
pom=$here/kafka/pom.xml
log4j_conf=$here/kafka/log4j2.properties
# The pom is the single place that names the Kafka version.
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")

cache=${ORDO_KAFKA_CACHE:-$HOME/.cache/ordo-kafka/$version}
data=${ORDO_KAFKA_DATA:-/tmp/ordo-kafka}
port=${ORDO_KAFKA_PORT:-9092}
controller_port=$((port + 1))
sasl_port=${ORDO_KAFKA_SASL_PORT:-$((port + 2))}
timeout=${ORDO_KAFKA_TIMEOUT:-90}
addr=127.0.0.1:$port
java=${JAVA_HOME:+$JAVA_HOME/bin/}java

pidfile=$data/kafka.pid
log=$data/kafka.log
classpath="$cache/lib/*"

# `down` and a fresh `up` delete this directory, so refuse obviously wrong values.
case $data in
  "" | / | "$HOME" | "$HOME"/) echo "kafka: refusing to use ORDO_KAFKA_DATA=$data" >&2; exit 2 ;;
esac

say() { echo "kafka: $*"; }

fail() {
  say "$*" >&2
  exit 1
}

# For failures of the broker itself: its log is the only clue CI leaves.
broker_failed() {
  say "$*" >&2
  echo "---- last 60 lines of $log ----" >&2
  tail -n 60 "$log" >&2 || true
  exit 1
}

# The pid of the broker started by an earlier `up`, if that process still runs.
# Checking the command line guards against the pid having been reused.
running_pid() {
  local pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  ps -p "$pid" -o args= 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

# kill -0 alone would count a broker that died as our child (a zombie) as alive.
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# An open port is not enough: the broker listens before it has joined its own
# KRaft quorum. TopicCommand --list sends a real Metadata request, which only
# succeeds once the broker is usable. The short client timeouts keep one failed
# attempt from eating the whole budget.
answers() {
  port_open "$port" || return 1
  "$java" -cp "$classpath" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$addr" --command-config "$data/probe.properties" --list \
    >/dev/null 2>&1
}

# Waits until the broker answers; gives up early if the process dies.
wait_ready() {
  local pid=$1 deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    alive "$pid" || broker_failed "broker pid $pid exited during startup"
    answers && return 0
    sleep 1
  done
  return 1
}

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  # A clean shutdown takes a few seconds; don't let a stuck JVM hang CI.
  for ((i = 0; i < 30; i++)); do
    alive "$pid" || return 0
    sleep 1
  done
  say "pid $pid ignored TERM for 30s, killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

fetch_jars() {
  # Keyed on the pom's content, so editing the pom (new version, new
  # dependency) refetches instead of silently running stale jars.
  local stamp want
  stamp=$cache/pom.sha256
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -d $cache/lib && -f $stamp && $(<"$stamp") == "$want" ]]; then
    return 0
  fi
  say "fetching jars for Kafka $version with Maven into $cache"
  mkdir -p "$cache"
  rm -rf "${cache:?}/lib" "${cache:?}/lib.tmp"
  # Copy into lib.tmp and rename, so an interrupted fetch never looks complete.
  if ! mvn -B -q -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$cache/lib.tmp" >"$cache/mvn.log" 2>&1; then
    cat "$cache/mvn.log" >&2
    fail "Maven could not fetch the Kafka jars"
  fi
  mv "$cache/lib.tmp" "$cache/lib"
  echo "$want" >"$stamp"
}

write_config() {
  # Single-node KRaft: one JVM is both broker and its own one-voter controller
  # quorum. Replication factors are 1 because there is no second broker.
  cat >"$data/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port,SASL_SSL://127.0.0.1:$sasl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
# SASL_SSL for the security tests (see make_certs; test credentials only).
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_ordo-plain="ordo-plain-secret";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$data/tls/server.p12
ssl.keystore.password=ordo-test
ssl.key.password=ordo-test
log.dirs=$data/logs
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
# One partition instead of 50 makes creating __consumer_offsets (see
# warm_group_coordinator) near instant; tests don't need the spread.
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests start consumer groups right away; the default 3s delay only slows them.
group.initial.rebalance.delay.ms=0
EOF
  # Client settings for the readiness probe (see answers()).
  cat >"$data/probe.properties" <<EOF
request.timeout.ms=3000
default.api.timeout.ms=5000
EOF
}

up() {
  local pid cluster_id
  # First, even for a running broker: the readiness probe runs from these jars.
  fetch_jars

  if pid=$(running_pid); then
    say "broker from an earlier 'up' is running (pid $pid), checking it answers"
    # Not ours to kill here: it may just be slow, and `down` is one command away.
    wait_ready "$pid" || broker_failed "broker pid $pid did not answer on $addr within ${timeout}s"
    say "ready at $addr (pid $pid)"
    return 0
  fi
  # Without our pid file, whatever holds the port is not ours; the probe would
  # happily report it as ready.
  if port_open "$port" || port_open "$controller_port" || port_open "$sasl_port"; then
    fail "port $port, $controller_port or $sasl_port on 127.0.0.1 is already in use by another process"
  fi

  # Always start from empty storage so tests never see topics or offsets left
  # behind by an earlier run that crashed before `down`.
  rm -rf "$data"
  mkdir -p "$data"
  make_certs
  write_config

  # KRaft refuses unformatted storage. A cluster id is 16 random bytes in
  # unpadded base64url; making it here saves a JVM start for `random-uuid`.
  cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  if ! "$java" -Dlog4j2.configurationFile="$log4j_conf" -cp "$classpath" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$data/server.properties" \
    --add-scram 'SCRAM-SHA-256=[name=ordo-scram,password=ordo-scram-secret]' \
    --add-scram 'SCRAM-SHA-512=[name=ordo-scram,password=ordo-scram-secret]' \
    >"$data/format.log" 2>&1; then
    cat "$data/format.log" >&2
    fail "formatting $data/logs failed"
  fi

  launch
}

# Starts the broker on the formatted storage in $data and waits until it
# answers.
launch() {
  local pid started
  # Detached (scripts/detach.sh) so the broker outlives this script and the
  # shell or CI step that ran it, and holds none of their descriptors.
  # Appending keeps the log of an earlier run (see restart).
  detach "$log" "$java" -Xms256m -Xmx512m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j_conf" \
    -cp "$classpath" kafka.Kafka "$data/server.properties"
  pid=$!
  echo "$pid" >"$pidfile"
  started=$SECONDS
  say "started Kafka $version pid $pid, waiting for $addr (log: $log)"
  if ! wait_ready "$pid"; then
    # A half-started broker would make the next `up` wait on it again.
    stop_pid "$pid"
    rm -f "$pidfile"
    broker_failed "broker did not answer on $addr within ${timeout}s (stopped it)"
  fi
  warm_group_coordinator
  say "ready in $((SECONDS - started))s at $addr (pid $pid)"
  say "SASL_SSL: KAFKA_SASL_SSL_BROKERS=127.0.0.1:$sasl_port KAFKA_SASL_SSL_CA=$data/tls/ca.pem"
}

# A throwaway CA and a server certificate for 127.0.0.1 signed by it, in the
# PKCS12 keystore the SASL_SSL listener serves. Made fresh at every `up`.
make_certs() {
  local d=$data/tls
  mkdir -p "$d"
  command -v openssl >/dev/null || fail "openssl is needed for the SASL_SSL listener's certificates"
  if ! {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ordo test CA" \
      -keyout "$d/ca.key" -out "$d/ca.pem" &&
      openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$d/server.key" -out "$d/server.csr" &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/server.ext" &&
      openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/server.ext" -out "$d/server.pem" &&
      openssl pkcs12 -export -in "$d/server.pem" -inkey "$d/server.key" -certfile "$d/ca.pem" \
        -name server -passout pass:ordo-test -out "$d/server.p12"
  } >"$d/openssl.log" 2>&1; then
    cat "$d/openssl.log" >&2
    fail "making the SASL_SSL certificates failed"
  fi
}

# Stops the broker and starts it again on the same data: topics, records and
# committed offsets survive, as after a broker crash and recovery. The chaos
# runner uses it to restart the broker mid-run.
restart() {
  local pid
  [[ -f $data/server.properties && -d $data/logs ]] || fail "no broker data in $data: run 'up' first"
  fetch_jars
  if pid=$(running_pid); then
    say "stopping pid $pid (keeping $data)"
    stop_pid "$pid"
  fi
  if port_open "$port" || port_open "$controller_port"; then
    fail "port $port or $controller_port on 127.0.0.1 is still in use"
  fi
  launch
}

# The broker creates __consumer_offsets only when a client first looks for a
# group coordinator. kafka-go answers the resulting "coordinator not available"
# by waiting JoinGroupBackoff (5s) before it retries, so without this every
# first consumer group in a test run stalls. Describing any group makes the
# broker create and load the topic now; the admin client retries until the
# coordinator is there. Best effort: its exit code means nothing (it exits 0
# even on errors) and tests work without it, only slower.
warm_group_coordinator() {
  "$java" -cp "$classpath" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$addr" --command-config "$data/probe.properties" \
    --describe --group ordo-kafka-warmup >"$data/warmup.log" 2>&1 || true
}

down() {
  local pid
  if pid=$(running_pid); then
    say "stopping pid $pid"
    stop_pid "$pid"
  else
    say "no broker running"
  fi
  rm -rf "$data"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  restart) restart ;;
  fetch) fetch_jars ;; # the jars only, for scripts/kafka-cluster.sh
  *) echo "usage: $0 up|down|restart|fetch" >&2; exit 2 ;;
esac

# Sourced by kafka.sh and kafka-cluster.sh.
#
# detach LOG CMD [ARGS...] starts CMD in the background, appending its output
# to LOG, with stdin from /dev/null and every other inherited descriptor
# closed, so that it outlives the script and holds nothing the script's
# caller opened: a lock taken around `make kafka-up` (flock, a CI runner's
# pipe) is released when the caller ends, not when the broker does. $! is the
# pid of CMD once it runs.
detach() {
  local log=$1 fd
  shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    exec nohup "$@" >>"$log" 2>&1 </dev/null
  ) &
}

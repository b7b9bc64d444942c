#!/bin/bash
# SIGTERM, Ctrl-C (twice) and kill -9 of real runs of suites/smoke.yaml; what remains running; the rerun.
cd "$(dirname "$0")/.."
R=${RESULTS:-/tmp/signals-demo-results}; rm -rf $R
left() { sleep ${1:-10}; ps -eo pid,sid,args | awk -v s=$2 '$2==s' | grep -v awk; ps -eo pid,args | grep "bench.reaper $2" | grep -v grep; }
one() {  # $1 signal, $2 how many [start] lines to wait for
  setsid .venv/bin/bench run suites/smoke.yaml --results $R > $R.out 2>&1 &
  P=$!
  until [ "$(grep -c '\[start\]' $R.out)" -ge $2 ] || ! kill -0 $P 2>/dev/null; do sleep 0.1; done
  sleep 0.5
  echo "== kill -$1 (after $2 [start] line(s))"
  kill -$1 $P; [ "$1" = INT ] && { sleep 0.3; kill -INT $P; echo "(second Ctrl-C sent)"; }
  wait $P; echo "exit status: $?"
  cat $R.out
  echo "-- still running 10 s later (session $P, and its watcher):"; left 10 $P; echo "-- (end)"
  echo "-- records: $(ls $R/smoke/trials/ 2>/dev/null | wc -l)"
}
one TERM 2
one INT 1
one KILL 1
echo "== rerun"; .venv/bin/bench run suites/smoke.yaml --results $R; echo "exit status: $?"
.venv/bin/bench status suites/smoke.yaml --results $R

#!/usr/bin/env bash
# The workers' raw throughput against end to end through Kafka, on the same requests (scenario files), in
# interleaved pairs: `load --in-process` feeds one inference worker's batcher directly (no Kafka, no Vert.x); then
# `serve` starts (the visual-prompt cache off so that both do the same work) and `load` sends the same requests
# through Kafka; then `serve` stops (so the next raw run has the machine to itself). Both warm up the same way first
# (inference.warmup_requests). This machine's speed drifts by 20% from minute to minute, so each pair's ratio is
# taken right after its own baseline, and the report gives every pair and their median.
# The Kafka broker and the load client are not the service: in a deployment they run on machines of their own. Here
# they share the service's cores, so by default the broker runs as a process of its own (`broker`) and both run
# under Linux's SCHED_IDLE policy (`chrt --idle 0`): they take the cores where the service leaves them idle and give
# them back the moment the service wants them; what they still take (caches, switches) counts against the service.
# BROKER=embedded runs the broker inside `serve` instead (its default with no Kafka configured), at the service's
# priority.
# Prints a Markdown report:
#   load-tests/throughput.sh > load-tests/results/$(date +%F)-throughput.md
# usage: [PAIRS=3] [WARMUP=32] [LOAD_ARGS="--requests 256"] load-tests/throughput.sh [MODEL_DIR] [ENGINE] [SCENARIO...]
#   PAIRS: raw/Kafka pairs per scenario (default 3)
#   LOAD_ARGS: options after the scenario's, for both loads (a later option wins)
#   WARMUP: requests each load sends first, the same way, and does not count (default 0): through Kafka the broker's,
#   the clients' and the service's code on that path compiles during the first minute or two; with WARMUP both
#   sides are compared warm, as a service runs for hours
#   BROKER: process (default: `broker`, a process of its own) or embedded (inside `serve`)
#   OUTSIDE: how the broker process and the Kafka load client are scheduled: idle (default, SCHED_IDLE), nice (nice
#   19) or normal (as the service)
#   MODEL_DIR defaults to the bench's `small` checkpoint (random weights of ViT-B/16, Q-Former 12x768,
#   OPT-125m), made on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
jar=target/blip2-stream.jar
[ -f "$jar" ] || mvn -B -q package -DskipTests
model=${1:-data/bench/small-f32}
engine=${2:-tensorflow}
pairs=${PAIRS:-3}
warmup=${WARMUP:-0}
broker_mode=${BROKER:-process}
outside=${OUTSIDE:-idle}
case "$outside" in
  idle) low=(chrt --idle 0);;
  nice) low=(nice -n 19);;
  normal) low=();;
  *) echo "OUTSIDE must be idle, nice or normal" >&2; exit 2;;
esac
case "$broker_mode" in process|embedded) ;; *) echo "BROKER must be process or embedded" >&2; exit 2;; esac
shift $(( $# > 2 ? 2 : $# ))
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(load-tests/scenarios/caption-closed-8.args load-tests/scenarios/caption-burst.args)
if [ ! -f "$model/config.json" ]; then
  java -jar $jar synthetic --size small --dtype f32 --out "$model" >&2
fi
kport=${KPORT:-19092}; cport=${CPORT:-19093}; hport=${HPORT:-18080}
pid=
bpid=
data=
stop_serve() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
  if [ -n "$bpid" ]; then kill -TERM "$bpid" 2>/dev/null || true; wait "$bpid" 2>/dev/null || true; bpid=; fi
  if [ -n "$data" ]; then rm -rf "$data"; data=; fi
}
trap stop_serve EXIT
start_serve() {
  data=$(mktemp -d)
  local kafka_env=()
  if [ "$broker_mode" = process ]; then
    "${low[@]}" java -jar $jar broker --port $kport --controller-port $cport --data-dir "$data/kafka" >"$data/broker.log" 2>&1 &
    bpid=$!
    for _ in $(seq 120); do
      grep -q "^Kafka broker on" "$data/broker.log" 2>/dev/null && break
      kill -0 "$bpid" 2>/dev/null || break
      sleep 0.5
    done
    grep -q "^Kafka broker on" "$data/broker.log" || { echo "broker did not start:" >&2; tail -20 "$data/broker.log" >&2; exit 1; }
    kafka_env=(BLIP2_KAFKA_BOOTSTRAP_SERVERS=localhost:$kport)
  fi
  env "${kafka_env[@]}" BLIP2_MODEL=$model BLIP2_ENGINE=$engine BLIP2_CACHE_ENABLED=false BLIP2_DATA_DIR=$data BLIP2_KAFKA_EMBEDDED_PORT=$kport \
    BLIP2_KAFKA_EMBEDDED_CONTROLLER_PORT=$cport BLIP2_HTTP_PORT=$hport java -jar $jar serve >"$data/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    curl -sf "localhost:$hport/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  echo "serve did not get ready:" >&2; tail -20 "$data/serve.log" >&2; exit 1
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
echo "# Raw workers against Kafka end to end, $(date -u +%FT%TZ)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(java -version 2>&1 | head -1)."
echo "Model: \`$model\`, engine $engine, the service's batching settings (conf/application.yaml), visual-prompt cache off;"
if [ "$broker_mode" = process ]; then
  echo "the broker a process of its own (\`broker\`); broker and load client scheduled: $outside;"
else
  echo "the broker inside \`serve\`; the load client scheduled: $outside;"
fi
echo "$pairs pairs per scenario, each a raw run and then a run through Kafka against a fresh \`serve\`;"
echo "each load first sends $warmup requests that are not counted."
echo
echo '```'
echo "\$ ${PAIRS:+PAIRS=$PAIRS }${WARMUP:+WARMUP=$WARMUP }${BROKER:+BROKER=$BROKER }${OUTSIDE:+OUTSIDE=$OUTSIDE }${LOAD_ARGS:+LOAD_ARGS=\"$LOAD_ARGS\" }load-tests/throughput.sh $model $engine ${scenarios[*]}"
summary=()
for s in "${scenarios[@]}"; do
  ratios=()
  for i in $(seq "$pairs"); do
    echo "-- pair $i: load @$s --in-process"
    raw=$(BLIP2_ENGINE=$engine java -jar $jar load @"$s" --warmup "$warmup" ${LOAD_ARGS:-} --in-process --model "$model" --json 2>/dev/null | tail -1)
    echo "$raw"
    start_serve
    echo "-- pair $i: load @$s   (through Kafka)"
    kafka=$("${low[@]}" java -jar $jar load @"$s" --warmup "$warmup" ${LOAD_ARGS:-} --bootstrap-servers localhost:$kport --json 2>/dev/null | tail -1)
    echo "$kafka"
    stop_serve
    r=$(python3 -c "print('%.1f' % (100 * $(field "$kafka" throughput) / $(field "$raw" throughput)))")
    ratios+=("$r")
    python3 -c "print('   Kafka / raw: %s%%  (%.3f / %.3f requests/s)' % ('$r', $(field "$kafka" throughput), $(field "$raw" throughput)))"
  done
  med=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
  summary+=("$s: Kafka / raw ${ratios[*]} (%), median $med%")
done
echo '```'
echo
for line in "${summary[@]}"; do echo "- $line"; done

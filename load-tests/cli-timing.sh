#!/usr/bin/env bash
# Times a command of the command line, several runs per engine, and prints medians.
# usage: load-tests/cli-timing.sh RUNS COMMAND [options of the command...]
#   e.g. load-tests/cli-timing.sh 5 caption --model DIR --image photo.png --max-new-tokens 12
#        load-tests/cli-timing.sh 5 match --model DIR --image photo.png --text "a cat" --text "a dog"
# Each run is a fresh JVM: "wall" includes JVM start, engine start and model load; "load" is the model load
# (--stats); the other columns are the program's own timings where the command prints them (--json of caption
# and ask). Needs target/blip2-stream.jar (mvn package -DskipTests).
set -euo pipefail
runs=$1; shift
jar="$(dirname "$0")/../target/blip2-stream.jar"
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
printf "%-10s %5s %9s %9s %9s %9s %9s %9s %9s %10s\n" engine runs wall_ms load_ms preproc vision qformer prefill decode peak_heap
for engine in tensorflow pytorch; do
  tmp=$(mktemp -d)
  touch "$tmp"/{wall,load,heap,preprocess,vision,qformer,prefill,decode}
  for i in $(seq "$runs"); do
    start=$(date +%s%N)
    java -jar "$jar" "$@" --json --stats --engine "$engine" >"$tmp/out.$i" 2>"$tmp/err.$i"
    end=$(date +%s%N)
    echo $(( (end - start) / 1000000 )) >>"$tmp/wall"
    grep -o '"\(preprocess\|vision\|qformer\|prefill\|decode\)":[0-9.]*' "$tmp/out.$i" | tr -d '"' \
      | awk -F: -v d="$tmp" '{print $2 >> (d "/" $1)}' || true
    sed -n 's/.*load \([0-9]*\) ms, peak heap \([0-9]*\) MB.*/\1 \2/p' "$tmp/err.$i" \
      | awk -v d="$tmp" '{print $1 >> (d "/load"); print $2 >> (d "/heap")}'
  done
  printf "%-10s %5s %9s %9s %9s %9s %9s %9s %9s %8sMB\n" "$engine" "$runs" "$(median <"$tmp/wall")" "$(median <"$tmp/load")" \
    "$(median <"$tmp/preprocess")" "$(median <"$tmp/vision")" "$(median <"$tmp/qformer")" "$(median <"$tmp/prefill")" \
    "$(median <"$tmp/decode")" "$(median <"$tmp/heap")"
  rm -rf "$tmp"
done

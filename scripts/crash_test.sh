#!/usr/bin/env bash
# Kill -9 at any moment: trains a tiny deterministic CPU run, SIGKILLs it KILLS times (a
# third at random moments, a third the instant a checkpoint is being written, a third the
# instant an epoch is appended to metrics.jsonl, before its checkpoint; after half of
# those, a torn copy of the last line is appended too, as a kill in the middle of the
# write would leave it), resumes after each kill, and checks that every checkpoint on disk
# is whole after every kill and that the final weights and the logged epochs equal an
# uninterrupted run's. RUNS killed runs in a row are checked against one uninterrupted run.
#   scripts/crash_test.sh         (RUNS=1 KILLS=24 EPOCHS=20; BCL=target/release/bcl)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1}
KILLS=${KILLS:-24}
EPOCHS=${EPOCHS:-20}
BCL=${BCL:-target/release/bcl}
[ -x "$BCL" ] || make build
work=$(mktemp -d)
echo "crash test: working in $work"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
python3 tests/support/tiny_fashion_mnist.py "$work/data" 20 10
train=("$BCL" train --root "$work/data" --imb-factor 5 --batch-size 8 --epochs "$EPOCHS" --device cpu --workers 2)

start=$(date +%s)
"${train[@]}" --out "$work/whole" > "$work/whole.log"
echo "crash test: uninterrupted run took $(( $(date +%s) - start )) s"

lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }

killed_run() {  # $1: the run's number
  run="$work/killed-$1"
  kills=0 during_write=0 during_append=0 torn=0 attempts=0
  while [ "$kills" -lt "$KILLS" ]; do
    attempts=$((attempts + 1))
    # A kill during a write leaves its temporary file; the next write replaces it. Remove it
    # so that only a write under way now counts below.
    rm -f "$run"/.*.partial
    if [ -f "$run/config.toml" ]; then cmd=("$BCL" train --resume "$run" --device cpu --workers 2); else cmd=("${train[@]}" --out "$run"); fi
    "${cmd[@]}" > "$work/attempt.log" 2>&1 &
    pid=$!
    if [ $((attempts % 3)) -eq 0 ]; then
      # Wait for a checkpoint write to be under way (its temporary file exists), then kill.
      target=""
      while kill -0 "$pid" 2>/dev/null; do
        if compgen -G "$run/.*.safetensors.partial" > /dev/null; then target=write; break; fi
        sleep 0.002
      done
    elif [ $((attempts % 3)) -eq 1 ]; then
      # Wait for the next epoch's line in metrics.jsonl (logged before its checkpoint), then kill.
      target="" logged=$(lines "$run/metrics.jsonl")
      while kill -0 "$pid" 2>/dev/null; do
        if [ "$(lines "$run/metrics.jsonl")" -gt "$logged" ]; then target=append; break; fi
        sleep 0.002
      done
    else
      sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.3 + 3 * rand() }')"
      target=random
    fi
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      kills=$((kills + 1))
      [ "$target" = write ] && during_write=$((during_write + 1))
      if [ "$target" = append ]; then
        during_append=$((during_append + 1))
        if [ $((during_append % 2)) -eq 0 ]; then
          # A torn append: the first bytes of a line, no newline.
          line=$(tail -n 1 "$run/metrics.jsonl")
          printf '%s' "${line:0:$((RANDOM % ${#line}))}" >> "$run/metrics.jsonl"
          torn=$((torn + 1))
        fi
      fi
    else
      wait "$pid" || { cat "$work/attempt.log"; echo "crash test: the run failed"; exit 1; }
      if grep -q "already finished" "$work/attempt.log"; then
        echo "crash test: the run finished before $KILLS kills; raise EPOCHS"; break
      fi
    fi
    # Every checkpoint on disk is whole after every kill.
    files=$(compgen -G "$run/*.safetensors" || true)
    [ -z "$files" ] || python3 tests/support/check_checkpoints.py $files
  done
  echo "crash test $1 of $RUNS: $kills kills ($during_write while a checkpoint was being written, $during_append right after an epoch was logged, $torn of them leaving a torn line) in $attempts attempts"
  "$BCL" train --resume "$run" --device cpu --workers 2 > "$work/final.log"
  python3 tests/support/check_checkpoints.py "$run/last.safetensors" "$run/best.safetensors"
  "$BCL" eval --checkpoint "$run/best" --device cpu > /dev/null
  python3 tests/support/check_checkpoints.py --same "$work/whole/last.safetensors" "$run/last.safetensors"
  # The same epochs with the same losses in the log (timings aside).
  if ! cmp <(cut -d, -f1-4 "$work/whole/metrics.jsonl") <(cut -d, -f1-4 "$run/metrics.jsonl"); then
    echo "crash test $1 of $RUNS: metrics.jsonl differs from the uninterrupted run's"; exit 1
  fi
  echo "crash test $1 of $RUNS: passed: final weights and logged epochs equal the uninterrupted run's"
}

for i in $(seq "$RUNS"); do killed_run "$i"; done
echo "crash test: $RUNS of $RUNS runs passed"

#!/bin/bash
# pipelines/fanout.sh over real ssh logins (issue 11): two throw-away sshd
# servers on 127.0.0.2 and 127.0.0.3 (own host key, client key, config and
# port, all in this test's directory), named in an SSHLOGINFILE by their ssh
# command lines.  The jobs are real `pipelines/run.sh RUNDIR ARGS` cnn-train
# runs on a tiny labelled set, with relative paths in the job lines (a
# login starts in its home directory, here a directory of the test's: fanout.sh
# must run the jobs in its own) and cnn-train found through the forwarded
# PATH.  Checked:
#  1. both hosts ran jobs to completion (joblog Host column, sshd logs);
#  2. host .3 killed mid-run (its sshd and every process under it, after its
#     second run has saved an epoch) leaves that run failed in the joblog and
#     without a summary, fanout.sh fails, and fanout.sh again with .2 alone
#     (--resume-failed) redoes exactly the failed and the never-started runs
#     (the killed one resumed from its saved state), not the finished ones;
#  3. every run's init/best/last.ckpt, summary.tsv/json, run.msgpack and .args
#     equal, byte for byte, those of the same job list run locally (no
#     SSHLOGINFILE) in the same directory, and log.tsv too except its timing
#     columns (5-8: wall times, which differ from run to run by nature);
#  4. pipelines/Makefile does not hold JOBS x THREADS to this machine's cores
#     when SSHLOGINFILE names remote logins only, and still does when it
#     names the local ':' login.
# Needs root (sshd), /usr/sbin/sshd and ssh; skipped (77) without them.
set -eu -o pipefail
fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "skip: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root: cannot run sshd servers"
[ -x /usr/sbin/sshd ] || skip "no /usr/sbin/sshd (openssh-server)"
command -v ssh >/dev/null || skip "no ssh (openssh-client)"
command -v ssh-keygen >/dev/null || skip "no ssh-keygen (openssh-client)"
command -v parallel >/dev/null || fail "GNU parallel is not installed"

export PATH=$SERTOOLS_BIN:$PATH
unset SSHLOGINFILE
# The remote logins get only what fanout.sh forwards; the sanitizer settings
# of the test run go along through GNU parallel's own $PARALLEL.
export PARALLEL=
[ "${SERTOOLS_SANITIZE:-0}" = 1 ] && export PARALLEL="--env ASAN_OPTIONS --env LSAN_OPTIONS --env UBSAN_OPTIONS"
FANOUT=$SERTOOLS_SRC/pipelines/fanout.sh RUN=$SERTOOLS_SRC/pipelines/run.sh
T=$PWD
epochs=12
[ "${SERTOOLS_SANITIZE:-0}" = 1 ] && epochs=4
nruns=6

# ---- processes: every one started here is ended by the EXIT trap -----------
sshd_pids=() fan_pid=
descendants() {   # descendants PID: PID and every process under it, with their names ("pid comm" lines)
  ps -e -o pid=,ppid=,comm= | awk -v root="$1" '
    { ppid[$1] = $2; comm[$1] = $3 }
    END { want[root] = 1
          do { more = 0; for (p in ppid) if (!(p in want) && (ppid[p] in want)) { want[p] = 1; more = 1 } } while (more)
          for (p in want) if (p in comm) print p, comm[p] }'
}
crash() {   # crash PID: SIGKILL a process and everything under it at once, as when a machine dies
  local all=" " p new=1
  while [ -n "$new" ]; do   # stop the tree until nothing new appears under it, so that nothing escapes by forking
    new=
    for p in $(descendants "$1" | cut -d' ' -f1); do
      case $all in *" $p "*) continue ;; esac
      all+="$p "; new=1
      kill -STOP "$p" 2>/dev/null || :   # it may have exited since ps saw it
    done
  done
  kill -KILL $all 2>/dev/null || :
}
cleanup() {
  if [ -n "$fan_pid" ]; then kill -TERM -- "-$fan_pid" 2>/dev/null || :; fi   # fanout.sh, parallel, ssh clients
  for p in "${sshd_pids[@]}"; do crash "$p"; done
  wait
}
trap cleanup EXIT

# ---- two sshd servers -------------------------------------------------------
[ -d /run/sshd ] || { mkdir -p /run/sshd; chmod 755 /run/sshd; }   # sshd's privilege separation dir
ssh-keygen -q -t ed25519 -N '' -C sertools-test-host -f "$T/host_key"
ssh-keygen -q -t ed25519 -N '' -C sertools-test-client -f "$T/client_key"
cp "$T/client_key.pub" "$T/authorized_keys"
# The logins start in hosts/home/ (ForceCommand cd), standing for a remote
# machine's home directory: what a job does outside fanout.sh's directory
# lands there (checked empty at the end), not in root's real home.  (The
# login shell reads root's shell startup files as usual; --norc keeps the
# second shell from reading them again.)
mkdir -p hosts/home
start_sshd() {   # start_sshd NAME ADDR: sets SSHD_PORT to the port it listens on; appends its pid to sshd_pids
  local name=$1 addr=$2 port try pid
  for try in $(seq 0 29); do
    port=$(( 20000 + ($$ * 7 + try * 131 + ${addr##*.} * 1009) % 40000 ))
    cat > "$T/sshd-$name.conf" <<EOF
ListenAddress $addr
Port $port
HostKey $T/host_key
AuthorizedKeysFile $T/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PrintMotd no
PidFile $T/sshd-$name.pid
ForceCommand cd $T/hosts/home && exec /bin/bash --norc -c "\$SSH_ORIGINAL_COMMAND"
EOF
    /usr/sbin/sshd -f "$T/sshd-$name.conf" -D -e 2>"$T/sshd-$name.log" &
    pid=$!
    for _ in $(seq 100); do
      grep -q "Server listening on $addr port $port" "$T/sshd-$name.log" && { sshd_pids+=("$pid"); SSHD_PORT=$port; return 0; }
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && { kill "$pid"; wait "$pid" || :; }   # neither listening nor dead in 5 s
    wait "$pid" 2>/dev/null || :   # sshd exits 255 when the port is taken: try another one
    grep -q "Bind to port $port" "$T/sshd-$name.log" || { cat "$T/sshd-$name.log"; fail "sshd on $addr:$port did not start"; }
  done
  fail "no free port for sshd on $addr after 30 tries"
}
login() {   # login ADDR PORT: the sshlogin line of a server (GNU parallel: ssh command, host last)
  echo "ssh -F /dev/null -p $2 -i $T/client_key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 root@$1"
}
start_sshd a 127.0.0.2; port_a=$SSHD_PORT; pid_a=${sshd_pids[0]}
start_sshd b 127.0.0.3; port_b=$SSHD_PORT; pid_b=${sshd_pids[1]}
login 127.0.0.2 "$port_a" > logins-a
{ cat logins-a; login 127.0.0.3 "$port_b"; } > logins-ab
for h in a b; do
  out=$(bash -c "$(sed -n "$([ $h = a ] && echo 1 || echo 2)p" logins-ab) 'echo \$PWD \$SSH_CONNECTION'" </dev/null) \
    || fail "ssh to server $h: exit $?"
  want=$([ $h = a ] && echo "127.0.0.2 $port_a" || echo "127.0.0.3 $port_b")
  [[ $out == "$T/hosts/home "*" $want" ]] \
    || fail "ssh to server $h: directory and SSH_CONNECTION '$out', expected '$T/hosts/home ... $want'"
done
echo "sshd servers: 127.0.0.2:$port_a (pid $pid_a), 127.0.0.3:$port_b (pid $pid_b)"

# ---- 4. the Makefile's cores check (remote logins only: not applied) ---------
too_many=$(( $(nproc) + 1 ))
mk=(make -s -C "$SERTOOLS_SRC/pipelines" --no-print-directory BIN="$SERTOOLS_BIN" OUT="$T/mk-out" help JOBS=$too_many THREADS=1)
"${mk[@]}" SSHLOGINFILE="$T/logins-ab" >mk1.log 2>&1 \
  || { cat mk1.log; fail "make with JOBS=$too_many and remote logins only: refused, expected accepted (cores are per host)"; }
{ echo ':'; cat logins-a; } > logins-local
rc=0; "${mk[@]}" SSHLOGINFILE="$T/logins-local" >mk2.log 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'more than the' mk2.log \
  || { cat mk2.log; fail "make with JOBS=$too_many and the local ':' login: exit $rc, expected the cores error"; }

# ---- a tiny labelled set and the job list ----------------------------------
mkdir data
{ echo FileName,EmoAct,Split_Set
  for k in $(seq 0 35); do
    split=Train; [ $k -ge 24 ] && split=Validation; [ $k -ge 30 ] && split=Test1
    printf 'utt%06d.wav,%d,%s\n' $k $(( 2 + 2 * (k % 3) )) $split
  done; } > data/labels.csv
"$SERTOOLS_TESTBIN/stream-gen" wave 36 12000 | melspec -o data/feats.ms
for s in Train Validation Test1; do binlabels --csv data/labels.csv -t arousal -s $s -o data/$s.ms data/feats.ms; done
mkdir study
for i in $(seq $nruns); do
  echo "$RUN runs/s$i --train ../data/Train.ms --dev ../data/Validation.ms --test ../data/Test1.ms" \
       "--epochs $epochs --crop-frames 64 --width-div 16 --threads 1 --seed $i --pad-short"
done > study/jobs.txt
runs_of() {   # runs_of JOBLOG [FIRST-ROW]: "host exit rundir" per row (host a, b or local)
  awk -F'\t' -v first="${2:-2}" 'NR >= first {
      h = $2 ~ /@127\.0\.0\.2$/ ? "a" : $2 ~ /@127\.0\.0\.3$/ ? "b" : $2 == ":" ? "local" : "?" $2
      n = split($9, w, " "); for (i = 1; i < n; i++) if (w[i] ~ /run\.sh$/) { print h, $7, w[i + 1]; break } }' "$1"
}

# ---- 1 and 2: both hosts, host b crashes during its second run --------------
t0=$(date +%s)
(cd study && SSHLOGINFILE=$T/logins-ab exec setsid "$FANOUT" 1 jobs.txt logs) >fan1.log 2>&1 &
fan_pid=$!
deadline=$(( $(date +%s) + 300 ))
waitfor() {   # waitfor WHAT COMMAND...: polls COMMAND until it succeeds; fails at the deadline or when fanout.sh ends
  local what=$1 stray; shift
  until "$@"; do
    if ! kill -0 "$fan_pid" 2>/dev/null; then
      cat fan1.log
      stray=$(cd hosts/home && find . -type f | sed -n 1,5p | tr '\n' ' ')   # jobs run outside fanout.sh's directory
      fail "fanout.sh ended before $what${stray:+ (files in the login directory: $stray)}"
    fi
    [ "$(date +%s)" -lt $deadline ] || { cat fan1.log; fail "timed out waiting for $what"; }
    sleep 0.05
  done
}
b_finished() { compgen -G 'study/logs/*.joblog' >/dev/null && [[ $'\n'$(runs_of study/logs/*.joblog) == *$'\n'"b 0 "* ]]; }
waitfor "a run finished on host b" b_finished
b_training() {   # a cnn-train under host b's sshd whose run has an epoch done: sets vrun (its run dir)
  local p
  for p in $(descendants "$pid_b" | awk '$2 == "cnn-train" { print $1 }'); do
    vrun=$(tr '\0' '\n' < "/proc/$p/cmdline" | awk 'prev == "--run-dir" || prev == "-o" || prev == "--resume" { print; exit } { prev = $0 }') \
      || continue   # it ended since ps saw it
    [ -n "$vrun" ] && [ -e "study/$vrun/log.tsv" ] && [ "$(wc -l < "study/$vrun/log.tsv")" -ge 2 ] && return 0
  done
  return 1
}
waitfor "a cnn-train on host b with an epoch done" b_training
crash "$pid_b"
echo "host b (127.0.0.3) crashed during $vrun, $(( $(date +%s) - t0 )) s after the start"
[ ! -e "study/$vrun/summary.tsv" ] || fail "$vrun finished before host b was crashed: the runs are too short for this machine"
rc=0; wait "$pid_b" || rc=$?
[ $rc = 137 ] || fail "host b's sshd (pid $pid_b): exit $rc after SIGKILL, expected 137"
rc=0; wait "$fan_pid" || rc=$?; fan_pid=
[ $rc -ne 0 ] || { cat fan1.log; fail "fanout.sh exited 0 although host b died under one of its runs"; }
cat fan1.log
logs=(study/logs/*.joblog)
[ ${#logs[@]} = 1 ] || fail "expected one joblog in study/logs, saw: ${logs[*]}"
log=${logs[0]}
runs_of "$log" > rows1
nrows1=$(wc -l < "$log")
bad=$(awk '$1 ~ /^[?]/' rows1)
[ -z "$bad" ] || fail "joblog rows of an unknown host: $bad"
grep -q '^a 0 ' rows1 || fail "no run finished on host a (127.0.0.2); joblog rows: $(cat rows1)"
grep -q '^b 0 ' rows1 || fail "no run finished on host b (127.0.0.3); joblog rows: $(cat rows1)"
crashed=$(awk -v r="$vrun" '$1 == "b" && $3 == r { print $2 }' rows1)
[ -n "$crashed" ] && [ "$crashed" != 0 ] \
  || fail "the run crashed on host b ($vrun): expected a failed row of host b in the joblog, saw exit '$crashed' in: $(cat rows1)"
for h in a b; do
  n=$(grep -c 'Accepted publickey for root' "sshd-$h.log" || :)
  [ "$n" -ge 2 ] || fail "sshd-$h.log: $n accepted logins, expected at least 2 (the check above and the runs)"
done

# ---- 2: again with host a alone (2 runs at a time there): the failed and the
# never-started runs ------------------------------------------------------------
(cd study && SSHLOGINFILE=$T/logins-a exec setsid "$FANOUT" 2 jobs.txt logs) >fan2.log 2>&1 &
fan_pid=$!
rc=0; wait "$fan_pid" || rc=$?; fan_pid=
cat fan2.log
[ $rc = 0 ] || fail "fanout.sh with host a alone: exit $rc, expected 0"
logs=(study/logs/*.joblog*)
[ "${logs[*]}" = "$log" ] || fail "the joblog was replaced: study/logs holds ${logs[*]}, expected $log alone"
runs_of "$log" $(( nrows1 + 1 )) > rows2
bad=$(awk '$1 != "a" || $2 != 0' rows2)
[ -z "$bad" ] || fail "re-run rows not finished on host a: $bad"
want=$(for i in $(seq $nruns); do grep -q "^. 0 runs/s$i\$" rows1 || echo runs/s$i; done)
got=$(cut -d' ' -f3 rows2 | sort -V)
[ "$got" = "$want" ] || fail "the re-run ran [$(echo $got)], expected the runs not finished before [$(echo $want)]"
grep -q "study: \(.*/\)\?$(basename "$vrun"): resuming" fan2.log || fail "$vrun was not resumed from its saved state (no 'resuming' in the re-run's output)"
for i in $(seq $nruns); do
  [ -s study/runs/s$i/summary.tsv ] || fail "runs/s$i: no summary.tsv after the re-run"
done
echo "ssh runs done, $(( $(date +%s) - t0 )) s after the start"
[ -z "$(ls -A hosts/home)" ] || fail "the remote jobs wrote into the login directory: $(ls -A hosts/home)"

# ---- 3: the same job list run here, in the same directory --------------------
mv study study-ssh
mkdir study
cp study-ssh/jobs.txt study/
t1=$(date +%s)
(cd study && exec setsid "$FANOUT" 2 jobs.txt logs) >fan3.log 2>&1 &
fan_pid=$!
rc=0; wait "$fan_pid" || rc=$?; fan_pid=
cat fan3.log
[ $rc = 0 ] || fail "fanout.sh without SSHLOGINFILE: exit $rc, expected 0"
bad=$(runs_of study/logs/*.joblog | awk '$1 != "local" || $2 != 0')
[ -z "$bad" ] || fail "joblog rows of the local run not finished here: $bad"
echo "local runs done in $(( $(date +%s) - t1 )) s"
for i in $(seq $nruns); do
  r=runs/s$i
  for f in $r/init.ckpt $r/best.ckpt $r/last.ckpt $r/summary.tsv $r/summary.json $r/run.msgpack $r.args; do
    cmp "study-ssh/$f" "study/$f" || fail "$f: over ssh and here differ"
  done
  cmp <(cut -f1-4 "study-ssh/$r/log.tsv") <(cut -f1-4 "study/$r/log.tsv") \
    || fail "$r/log.tsv: epochs, losses or UARs over ssh and here differ"
done
echo "ok: $nruns runs over two sshd hosts (one crashed) equal the local runs; $(( $(date +%s) - t0 )) s"

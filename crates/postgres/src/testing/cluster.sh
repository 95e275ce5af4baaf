# Runs a throwaway PostgreSQL cluster for one test process, then removes it.
#
# Arguments: the directory of initdb, postgres and pg_ctl; the cluster's directory, which must
# not exist yet; the port to listen on at 127.0.0.1.
# Standard input: a pipe whose writing end only the test process holds. It closes when that
# process ends, however it ends: postgres is then stopped and the directory removed.
# Output: what initdb or postgres said, when they stop.

# The test process may be gone by the time there is something to say: keep going to clean up.
trap '' PIPE
exec 2>&1 3<&0 </dev/null
bin=$1 dir=$2 port=$3

mkdir -m 700 "$dir" || exit 1
if ! "$bin/initdb" --pgdata="$dir/data" --username=postgres --auth=trust --encoding=UTF8 --locale=C --no-sync \
  >"$dir/initdb.log" 2>&1; then
  cat "$dir/initdb.log"
  rm -rf "$dir"
  exit 1
fi

"$bin/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$dir" \
  -c fsync=off -c full_page_writes=off >"$dir/postgres.log" 2>&1 3<&- &
postgres=$!
# The watchdog: stops postgres when the pipe closes. pg_ctl finds postgres through its data
# directory, so a postgres that stopped before, with the directory gone, is not mistaken for
# another process.
{ cat >/dev/null; "$bin/pg_ctl" stop --pgdata="$dir/data" --mode=immediate; } <&3 >/dev/null 2>&1 &
exec 3<&-

wait "$postgres"
stopped=$?
cat "$dir/postgres.log"
rm -rf "$dir"
exit "$stopped"

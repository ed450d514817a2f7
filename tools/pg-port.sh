# Sourced by tools/pg-server.sh and tools/pg17-direct-tls.sh: starts a PostgreSQL server on
# the first free port, since another run's server (or anything else) may hold one.
#
#   port=54329; start_on_a_free_port LOG FIXED START STOP
#
# calls `START PORT` (which starts the server on PORT, logging to LOG) and, should the server
# have failed to bind an address, or bound only some (say IPv6 but not 127.0.0.1, which
# something else holds), `STOP` if it started, then tries the next port: up to 40 ports from
# $port. FIXED non-empty means the user chose $port: a busy one is an error then. On return
# $port is the server's. Any other failure prints LOG and returns 1.
start_on_a_free_port() {
    local log=$1 fixed=$2 start=$3 stop=$4 attempt
    for attempt in $(seq 1 40); do
        : >"$log"
        if "$start" "$port"; then
            grep -q "could not bind" "$log" || return 0
            "$stop"
        fi
        if [ -n "$fixed" ] || [ "$attempt" = 40 ] || ! grep -q "could not bind" "$log"; then
            cat "$log" >&2
            return 1
        fi
        echo "==> port $port is taken; trying $((port + 1))" >&2
        port=$((port + 1))
    done
}

# shellcheck shell=bash
# The switch (sourced by lib.sh): a reverse proxy on the instance owns HOST_PORT and the app's
# containers listen on loopback ports of their own, so a deployment starts the new container
# BESIDE the serving one, checks it directly, then points the proxy at it, watches it, and keeps
# the previous one warm to switch back to within seconds (docs/codedeploy.md, "The switch").
#
# Why HAProxy (Debian/Ubuntu and AL2023 package it): measured, 20 switches each under a prober
# every 20 ms, HAProxy's runtime API and nginx's config rewrite + reload both lost no request and
# both served the new upstream within tens of ms (docs/codedeploy.md). What decides is the watch
# and the drain: the runtime API reports per server its 5xx answers (hrsp_5xx), failed
# connections and requests in flight (scur), re-points and drains a server and switches back in
# one socket write, no reload, no new workers. nginx's open-source build counts no status per
# upstream (its log would have to be parsed) and each reload starts new workers while the old
# ones linger until their connections end; kamal-proxy has no distribution package (a GitHub
# release binary) and stops checking once it has switched. socat is HAProxy's documented client
# for that socket.
#
# Settings (deploy.env or the hook's environment):
#   PROXY           auto (default: HAProxy when haproxy and socat are installed) or off (the
#                   restart swap of lib.sh, with a one-line warning)
#   STATE_DIR       /var/lib/webapp (the pipeline's own directory, like /etc/webapp; not the
#                   app's name): STATE_DIR/NAME (NAME = CONTAINER_NAME, the contract's app-name)
#                   holds the proxy's config, socket, pid file and the journal (journal.sh); the
#                   bootstrap's webapp-proxy@NAME unit runs it
#   BACKEND_IP      127.0.0.1: where the containers are published (a port each, chosen free)
#   WATCH_SECONDS   30: after the switch, the new version is watched this long (its health path,
#                   directly, and the 5xx answers the proxy saw from it); a failure switches back
#   WATCH_MAX_5XX   0: more 5xx answers (or failed connections, or GET/HEAD requests the proxy
#                   retried on the previous version) than this in the window fail it
#   DRAIN_TIMEOUT   30: the old container's in-flight requests get this long before it stops

# proxy_wanted: 0 when this deployment switches through the proxy; says why not in one line.
proxy_wanted() {
  case ${PROXY:-auto} in
    off) log "WARNING: PROXY=off: the container is restarted on host port $HOST_PORT (a gap of about a second per deployment)"; return 1 ;;
    auto) ;;
    *) die "PROXY must be auto or off, got '$PROXY'" ;;
  esac
  if ! command -v haproxy >/dev/null 2>&1 || ! command -v socat >/dev/null 2>&1; then
    log "WARNING: no haproxy/socat on this instance: the container is restarted on host port $HOST_PORT (a gap of about a second per deployment); run infra/instance/bootstrap.sh to install the proxy"
    return 1
  fi
}

proxy_settings() {
  STATE_DIR=${STATE_DIR:-/var/lib/webapp}
  SD=$STATE_DIR/$CONTAINER_NAME
  BACKEND_IP=${BACKEND_IP:-127.0.0.1}
  WATCH_SECONDS=${WATCH_SECONDS:-30}
  WATCH_MAX_5XX=${WATCH_MAX_5XX:-0}
  DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-30}
  local key
  for key in WATCH_SECONDS WATCH_MAX_5XX DRAIN_TIMEOUT; do
    is_uint "${!key}" || die "$key must be a number, got '${!key}'"
  done
  [[ $BACKEND_IP =~ ^[0-9.]+$ ]] || die "BACKEND_IP must be an IPv4 address, got '$BACKEND_IP'"
  # a unix socket's path holds at most 107 bytes
  [ $((${#SD} + 11)) -le 107 ] || die "STATE_DIR/CONTAINER_NAME ($SD) is too long for the proxy's socket $SD/proxy.sock (107 bytes at most): set a shorter STATE_DIR"
  mkdir -p "$SD"
}

# api CMD: one runtime API command ("a; b" for several); its answer on stdout.
api() { printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$SD/proxy.sock"; }
proxy_running() { [ -S "$SD/proxy.sock" ] && api "show info" 2>/dev/null | grep -q '^Name: HAProxy'; }

# stat SERVER FIELD: one field of `show stat` for server SERVER of backend app (by header name).
stat() {
  api "show stat" | awk -F, -v s="$1" -v f="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "app" && $2 == s { print $(col[f]); exit }'
}

# live_server: the server the proxy sends new requests to (s1 or s2; none before the first switch).
live_server() {
  local s st
  for s in s1 s2; do
    st=$(stat "$s" status)
    case $st in MAINT* | DRAIN* | "") ;; *) echo "$s"; return 0 ;; esac
  done
}
other() { if [ "$1" = s1 ]; then echo s2; else echo s1; fi; }

# backend_port NAME: the host port NAME is published on ("" when not on BACKEND_IP).
backend_port() {
  inspect "$1" "{{range \$p, \$b := .HostConfig.PortBindings}}{{range \$b}}{{.HostIp}}:{{.HostPort}} {{end}}{{end}}" |
    tr ' ' '\n' | sed -n "s/^${BACKEND_IP//./\\.}:\([0-9][0-9]*\)$/\1/p" | head -n 1
}

# free_port: a port on BACKEND_IP nothing listens on and no container of this dockerd is bound to
# (a stopped one keeps its binding), from 20000-32767 (below Linux's ephemeral range).
free_port() {
  local used p i
  # shellcheck disable=SC2016 # a Go template, not shell
  used=" $(docker ps -aq | xargs -r docker inspect --format '{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostPort}} {{end}}{{end}}' | tr '\n' ' ') "
  for i in $(seq 1 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM + i) % 12768))
    [[ $used == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/$BACKEND_IP/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free port on $BACKEND_IP in 20000-32767 after 50 tries"
}

# write_proxy_config LIVE PORT: the config a (re)start of the proxy reads: LIVE (s1|s2) on PORT
# serves, the other is disabled. Written after every switch (the runtime API changes nothing on
# disk), so an instance restart brings back the last good version. Atomic (rename).
#
# The watch's safety net (only while "prev" is ready, i.e. during the watch): s1/s2 alternate
# between deployments and "prev" (the highest id) is pointed at the previous container for the
# watch. `balance first` sends every request to the lowest-id usable server (the live one: a
# drained server has weight 0 and is not chosen), so prev receives nothing of its own; a GET or
# HEAD the new version answers 5xx (or closes, or refuses) is retried ONCE (retries 1) and
# `option redispatch` sends the retry to another usable server than the one that failed: prev,
# the version that served before. Measured (make switch, docs/codedeploy.md): while the version
# that starts failing after the switch served, clients saw 4-12 failed requests, now 0 (the
# watch still sees every one and switches back). Any other method is never
# retried (a POST must not run twice), nor anything outside the watch (prev is then in maint:
# no retry onto a version about to be stopped). HAProxy does not count a retried answer in the
# server's hrsp_5xx but in its wretr: the watch counts both (errors_of). retry-on,
# disable-l7-retry: HAProxy 2.0+ (Debian 12 ships 2.6, Ubuntu 22.04 2.4; AL2023's 2.x not checked
# here). A refused connection (nothing was sent) is tried once more, also outside the watch.
write_proxy_config() {
  local live=$1 port=$2 s line servers=
  for s in s1 s2 prev; do
    line="  server $s $BACKEND_IP:$port"
    [ "$s" = "$live" ] || line+=" disabled"
    servers+=$line$'\n'
  done
  cat > "$SD/proxy.cfg.new" <<EOF
# Written by the webapp CodeDeploy hooks (scripts/proxy.sh) after each switch; the live
# container is the server not disabled. Edits are overwritten by the next deployment.
global
  stats socket $SD/proxy.sock mode 600 level admin
  pidfile $SD/proxy.pid
defaults
  mode http
  option forwardfor
  timeout connect 2s
  timeout client 65s
  timeout server 65s
  timeout http-keep-alive 5s
  # the watch's safety net: write_proxy_config says why (one retry, GET/HEAD, watch only)
  retries 1
  option redispatch
  retry-on conn-failure empty-response 500 502 503 504
frontend web
  bind ${HOST_IP:-}:$HOST_PORT
  default_backend app
backend app
  balance first
  http-request disable-l7-retry unless METH_GET { srv_is_up(app/prev) }
$servers
EOF
  local out
  out=$(haproxy -c -q -f "$SD/proxy.cfg.new" 2>&1) || die "the proxy config written to $SD/proxy.cfg.new does not load: $out"
  mv "$SD/proxy.cfg.new" "$SD/proxy.cfg"
}

# proxy_unit: the bootstrap's systemd unit runs the proxy when systemd does and STATE_DIR is its.
proxy_unit() {
  [ -d /run/systemd/system ] && [ "$STATE_DIR" = /var/lib/webapp ] &&
    systemctl cat webapp-proxy@.service >/dev/null 2>&1
}

# start_proxy: run the proxy on the config written last. systemd's unit restarts it with the
# instance; without systemd haproxy daemonizes (its own session: a hook's death or timeout, which
# signals the hook's process group, leaves it serving).
start_proxy() {
  if proxy_unit; then
    systemctl enable --now "webapp-proxy@$CONTAINER_NAME.service" >/dev/null 2>&1 ||
      die "systemctl start webapp-proxy@$CONTAINER_NAME failed: journalctl -u webapp-proxy@$CONTAINER_NAME"
  else
    haproxy -D -q -f "$SD/proxy.cfg" </dev/null >/dev/null 2>&1 ||
      die "haproxy did not start on $SD/proxy.cfg (is host port $HOST_PORT free? ss -ltnp)"
  fi
  local i
  for i in $(seq 1 50); do
    if proxy_running; then log "proxy serving host port $HOST_PORT ($SD/proxy.cfg)"; return 0; fi
    sleep 0.1
  done
  die "the proxy did not answer on $SD/proxy.sock within 5 s"
}

# settings_digest: what a container was created with besides its image (the app env file's bytes,
# the container port): a kept container is reused only when the instance's settings are the same.
settings_digest() {
  { echo "$CONTAINER_PORT"; if [ -n "$APP_ENV_FILE" ]; then cat "$APP_ENV_FILE"; fi; } | sha256sum | cut -c1-16
}

# proxy_start_next: ApplicationStart through the proxy. The new container starts beside the
# serving one, on a port of its own; nothing sends it a request yet.
proxy_start_next() {
  local name=$CONTAINER_NAME next=$CONTAINER_NAME-next prev=$CONTAINER_NAME-previous out port
  remove "$next" "left by an interrupted ApplicationStart"
  remove "$name-failed" "the container of the last failed deployment, kept until now for its logs"
  if ours "$name"; then
    log "$(describe "$name") already serves for deployment ${DEPLOYMENT_ID:-manual}: nothing to start"
    return 0
  fi
  if [ "$(inspect "$prev" '{{.Config.Image}}')" = "$IMAGE" ] && [ -n "$(backend_port "$prev")" ] &&
    [ "$(label "$prev" webapp.settings)" = "$(settings_digest)" ]; then
    # a redeploy of the previous revision (or CodeDeploy's rollback): the kept container, no pull
    docker rename "$prev" "$next"
    journal reuse "kept container of revision $(label "$next" webapp.revision) started again, no new container"
  else
    port=$(free_port) # NAME-previous stays until a switch replaces it: a failed try keeps it
    create_next "$next" "$(inspect "$name" '{{.Config.Image}}')" "$BACKEND_IP:$port:$CONTAINER_PORT"
  fi
  if ! out=$(docker start "$next" 2>&1); then
    docker rename "$next" "$name-failed"
    die "docker start of $IMAGE failed (it never received a request; the serving container is untouched): $out $(docker logs --tail 20 "$name-failed" 2>&1)"
  fi
  log "started $next ($IMAGE, revision $REVISION) on $BACKEND_IP:$(backend_port "$next"); ValidateService checks it, then the proxy switches to it"
}


# fail_next WHY: the new container never got a request: stopped, kept as NAME-failed, hook fails.
fail_next() {
  trap - TERM
  log "last log lines of $CONTAINER_NAME-next:"
  docker logs --tail 20 "$CONTAINER_NAME-next" 2>&1 | sed 's/^/  | /' >&2 || true
  docker stop --time "$STOP_TIMEOUT" "$CONTAINER_NAME-next" >/dev/null 2>&1 || true
  docker rename "$CONTAINER_NAME-next" "$CONTAINER_NAME-failed" 2>/dev/null || true
  die "$1 (it never received a request; $(describe "$CONTAINER_NAME") serves on)"
}

# now_ms: milliseconds since the epoch (journal and switch times).
now_ms() { date +%s%3N; }

# proxy_validate: ValidateService through the proxy: check the new container directly, switch,
# watch, then drain and stop the old one (kept stopped for a redeploy of its revision).
proxy_validate() {
  local name=$CONTAINER_NAME next=$CONTAINER_NAME-next prev=$CONTAINER_NAME-previous
  local port body='' live new t0 old_port
  if ours "$name" && ! container_exists "$next"; then
    log "$(describe "$name") already serves for deployment ${DEPLOYMENT_ID:-manual} (a re-run): nothing to switch"
    return 0
  fi
  [ "$(inspect "$next" '{{.Config.Image}}')" = "$IMAGE" ] ||
    die "no $next running $IMAGE (ApplicationStart did not run, or it failed)"
  trap 'output_after_term; fail_next "ValidateService was terminated (hook timeout) before the switch"' TERM
  if [ -n "${terminated:-}" ]; then output_after_term; fail_next "ValidateService was terminated (hook timeout) before the switch"; fi
  port=$(backend_port "$next")
  wait_healthy "$next" "http://$BACKEND_IP:$port$HEALTH_PATH" fail_next
  if ! proxy_running; then
    if [ -f "$SD/proxy.cfg" ]; then start_proxy; fi
  fi
  if ! proxy_running; then
    first_switch "$port"
    watch s1 "$port" || switch_back "" s1 "$WATCH_FAILURE"
  else
    live=$(live_server)
    new=$(other "${live:-s2}")
    old_port=$(backend_port "$name")
    t0=$(now_ms)
    # prev (the serving container, again) takes the GET/HEAD the new one fails in the watch
    # (write_proxy_config); the new server takes new requests; the old one drains (its requests
    # in flight finish)
    if [ -z "$(stat prev status)" ]; then
      # a proxy started on a config older than the server prev: it gets it when it restarts
      log "WARNING: the running proxy has no server prev (started on an older $SD/proxy.cfg): in this watch a client sees the new version's 5xx until the switch back; restart webapp-proxy@$CONTAINER_NAME to load the config written after this switch"
    elif [ -n "$live" ] && [ -n "$old_port" ]; then
      api "set server app/prev addr $BACKEND_IP port $old_port; set server app/prev state ready" >/dev/null
    fi
    api "set server app/$new addr $BACKEND_IP port $port; set server app/$new state ready${live:+; set server app/$live state drain}" >/dev/null
    SWITCH_MS=$(($(now_ms) - t0))
    remove "$prev" "two deployments old now; its image stays until pruned"
    if container_exists "$name"; then docker rename "$name" "$prev"; fi
    docker rename "$next" "$name"
    journal switch "to revision $REVISION on $BACKEND_IP:$port in ${SWITCH_MS} ms"
    log "switched: the proxy sends new requests to $(describe "$name") (${SWITCH_MS} ms); $prev drains"
    trap 'output_after_term; switch_back "$live" "$new" "ValidateService was terminated (hook timeout) during the watch"' TERM
    watch "$new" "$port" || switch_back "$live" "$new" "$WATCH_FAILURE"
    trap - TERM
    # the watch passed: no more retries onto the previous version (it stops below)
    api "set server app/prev state maint" >/dev/null
    # on disk only now: a proxy that restarts (the instance did) before the watch passed serves
    # the last version that passed it
    write_proxy_config "$new" "$port"
    if [ -n "$live" ]; then
      drain "$live"
      api "set server app/$live state maint" >/dev/null
    fi
  fi
  if container_exists "$prev"; then
    docker stop --time "$STOP_TIMEOUT" "$prev" >/dev/null 2>&1 || true
    log "stopped $(describe "$prev"); kept for a redeploy of its revision (started again, no pull)"
  fi
  prune_images "$(label "$name" webapp.previous-image)"
}

# first_switch PORT: no proxy yet (the first deployment, or the first since the proxy was
# installed): a container that publishes HOST_PORT itself stops first (a gap, once), then the
# proxy starts on the new container.
first_switch() {
  local name=$CONTAINER_NAME prev=$CONTAINER_NAME-previous t0
  t0=$(now_ms)
  if container_exists "$name"; then
    remove "$prev" "two deployments old now"
    docker stop --time "$STOP_TIMEOUT" "$name" >/dev/null 2>&1 || true
    docker rename "$name" "$prev"
    log "$(describe "$prev") published host port $HOST_PORT itself: stopped so the proxy can take the port (once)"
  fi
  write_proxy_config s1 "$1"
  start_proxy
  docker rename "$CONTAINER_NAME-next" "$name"
  SWITCH_MS=$(($(now_ms) - t0))
  journal switch "to revision $REVISION on $BACKEND_IP:$1: the proxy started (${SWITCH_MS} ms)"
}

# watch SERVER PORT: WATCH_SECONDS of the new version serving: its health path directly (two
# failed checks in a row fail it), its container running, and the 5xx answers (and failed
# connections) the proxy saw from it. On failure: WATCH_FAILURE and FIRST_FAIL_MS set, 1 returned.
watch() {
  local srv=$1 port=$2 end=$((SECONDS + WATCH_SECONDS)) base now bad=0 tick=0 body='' state
  [ "$WATCH_SECONDS" -gt 0 ] || return 0
  base=$(errors_of "$srv")
  log "watching revision $REVISION for ${WATCH_SECONDS}s (health, 5xx through the proxy)"
  while [ "$SECONDS" -lt "$end" ]; do
    sleep 0.1
    # the proxy's counters every 0.1 s (a socket read); the health path and the container every 0.5 s
    now=$(errors_of "$srv")
    if [ $((now - base)) -gt "$WATCH_MAX_5XX" ]; then
      FIRST_FAIL_MS=$(now_ms) WATCH_FAILURE="$((now - base)) answers 5xx (or failed connections, or retried on the previous version) through the proxy in the watch, more than WATCH_MAX_5XX=$WATCH_MAX_5XX"
      return 1
    fi
    tick=$((tick + 1))
    [ $((tick % 5)) -eq 0 ] || continue
    if healthy "http://$BACKEND_IP:$port$HEALTH_PATH"; then bad=0; continue; fi
    [ "$bad" -gt 0 ] || FIRST_FAIL_MS=$(now_ms)
    bad=$((bad + 1))
    state=$(inspect "$CONTAINER_NAME" '{{.State.Status}}')
    if [ "$state" != running ]; then
      WATCH_FAILURE="the container is ${state:-missing} ${SECONDS}s into the watch"
      return 1
    fi
    [ "$bad" -gt 1 ] || continue
    WATCH_FAILURE="the health path failed twice in a row in the watch: $body"
    return 1
  done
  log "watch passed: revision $REVISION healthy for ${WATCH_SECONDS}s, $(($(errors_of "$srv") - base)) 5xx through the proxy"
}

# errors_of SERVER: the 5xx answers, failed connections and retries (a GET/HEAD it failed that
# the proxy sent again, to prev: not counted in hrsp_5xx) the proxy counted for SERVER.
errors_of() {
  local x
  x=$(api "show stat" | awk -F, -v s="$1" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "app" && $2 == s { print $(col["hrsp_5xx"]) + $(col["econ"]) + $(col["eresp"]) + $(col["wretr"]); exit }')
  echo "${x:-0}"
}

# switch_back OLD NEW WHY: the previous container (still running, drained) takes the requests
# again, the new one stops (kept as NAME-failed for its logs); the hook fails.
switch_back() {
  local old=$1 new=$2 ms name=$CONTAINER_NAME prev=$CONTAINER_NAME-previous
  trap - TERM
  if [ -z "$old" ] || ! container_exists "$prev"; then
    die "$3; nothing to switch back to (first deployment on this instance): revision $REVISION keeps serving"
  fi
  docker start "$prev" >/dev/null 2>&1 || true # running already, unless it was stopped meanwhile
  api "set server app/$old state ready; set server app/$new state maint; set server app/prev state maint" >/dev/null
  ms=$(($(now_ms) - ${FIRST_FAIL_MS:-$(now_ms)}))
  docker rename "$name" "$name-failed"
  docker rename "$prev" "$name"
  write_proxy_config "$old" "$(backend_port "$name")"
  journal rollback "to revision $(label "$name" webapp.revision): serving again ${ms} ms after the first failed check ($3)"
  log "switched back: $(describe "$name") serves again, ${ms} ms after the first failed check"
  log "last log lines of the failed container:"
  docker logs --tail 20 "$name-failed" 2>&1 | sed 's/^/  | /' >&2 || true
  docker stop --time "$STOP_TIMEOUT" "$name-failed" >/dev/null 2>&1 || true
  die "revision $REVISION failed after the switch: $3; switched back to revision $(label "$name" webapp.revision) ${ms} ms after the first failed check"
}

# drain SERVER: wait (DRAIN_TIMEOUT at most) until the proxy has no request in flight to SERVER.
drain() {
  local end=$((SECONDS + DRAIN_TIMEOUT)) n
  while n=$(stat "$1" scur) && [ "${n:-0}" -gt 0 ]; do
    if [ "$SECONDS" -ge "$end" ]; then
      log "drain: $n requests still in flight to the old container after ${DRAIN_TIMEOUT}s; stopping it anyway"
      return 0
    fi
    sleep 0.2
  done
}

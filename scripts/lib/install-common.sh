# What scripts/install and scripts/uninstall share: messages, the paths of a
# user install, the record of what install changed, and the install steps.
# Sourced, never run. Every change install makes is written to the record
# first-time-only where it matters (what a file was before hooktrail), so
# running install again never forgets the state to go back to.

say() { printf 'hooktrail: %s\n' "$*"; }
warn() { printf 'hooktrail: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }

# The paths of a user install, from HOME and the XDG variables, the way the
# emitter and the collector compute them (shared/src/paths.rs) and systemd
# looks for user units.
user_paths() {
  [ -n "${HOME:-}" ] || die "HOME is not set"
  bin="$HOME/.local/bin"
  config_home="${XDG_CONFIG_HOME:-$HOME/.config}"
  data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
  state_home="${XDG_STATE_HOME:-$HOME/.local/state}"
  config_file="${HOOKTRAIL_CONFIG:-$config_home/hooktrail/config.json}"
  unit_file="$config_home/systemd/user/hooktrail-collector.service"
  doc_file="$HOME/.local/share/doc/hooktrail/README.md"
  # The file `hooktrail-emit install` changes (its user scope).
  settings="$HOME/.claude/settings.json"
  record_dir="$data_home/hooktrail/install"
  record="$record_dir/record"
}

# The record: one "key value" per line.
record_get() { [ -f "$record" ] && awk -v k="$1" '$1 == k { sub(/^[^ ]* ?/, ""); print; exit }' "$record" || true; }
record_has() { [ -f "$record" ] && grep -q "^$1\( \|$\)" "$record"; }
# Adds the line unless it is there already.
remember() {
  mkdir -p -m 700 "$record_dir"
  touch "$record"
  grep -qxF "$1${2:+ $2}" "$record" || printf '%s\n' "$1${2:+ $2}" >>"$record"
}
# Replaces every line of the key with one line (or none without a value).
record_set() {
  mkdir -p -m 700 "$record_dir"
  touch "$record"
  awk -v k="$1" '$1 != k' "$record" >"$record.new"
  [ $# -lt 2 ] || printf '%s %s\n' "$1" "$2" >>"$record.new"
  mv -f "$record.new" "$record"
}
record_list() { [ -f "$record" ] && awk -v k="$1" '$1 == k { sub(/^[^ ]* ?/, ""); print }' "$record" || true; }

file_sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

# Copies a binary into place by rename, so a running collector keeps its old
# file and a hook never sees half a binary.
place_binary() {
  local source="$1" target="$2"
  mkdir -p "$(dirname "$target")"
  if [ -e "$target" ] && [ "$(readlink -f "$source")" = "$(readlink -f "$target")" ]; then
    return
  fi
  install -m 755 "$source" "$target.hooktrail-new"
  mv -f "$target.hooktrail-new" "$target"
  remember binary "$target"
}

# Whether a user systemd answers here (not in containers, not over plain su).
user_systemd_works() {
  command -v systemctl >/dev/null && systemctl --user show-environment >/dev/null 2>&1
}

# Registers the hook in ~/.claude/settings.json. The first time, it keeps
# what the file was (its bytes, or that there was none) so that uninstall can
# put exactly that back; if the file changed since install last wrote it,
# that copy is no longer the state to go back to, and uninstall only removes
# hooktrail's entries.
register_hook() {
  local after
  after="$(record_get settings-after-sha)"
  if ! record_has settings-before && ! record_has settings-absent; then
    if [ -e "$settings" ]; then
      cp "$settings" "$record_dir/settings.before"
      chmod 600 "$record_dir/settings.before"
      remember settings-before "$record_dir/settings.before"
    else
      remember settings-absent
    fi
  elif [ -n "$after" ] && [ "$(file_sha "$settings")" != "$after" ]; then
    remember settings-changed-since
  fi
  "$bin/hooktrail-emit" install "${force[@]}"
  record_set settings-after-sha "$(file_sha "$settings")"
}

# The sender's config: the Redis URL in config.json, a 0600 file in a 0700
# directory because the URL holds the password (the emitter refuses such a
# file that others can read).
write_sender_config() {
  local url="$redis_url" password="${HOOKTRAIL_REDIS_PASSWORD:-}"
  case "$url" in
    redis://*|rediss://*) ;;
    *) die "--redis must be a redis:// or rediss:// URL" ;;
  esac
  if [ -n "$password" ]; then
    local scheme="${url%%://*}" rest="${url#*://}" user=""
    case "${rest%%/*}" in *@*) user="${rest%%@*}"; rest="${rest#*@}"; user="${user%%:*}" ;; esac
    url="$scheme://$user:$(percent_encode "$password")@$rest"
  fi
  local text
  text="$(printf '{"mode": "redis", "redis": {"url": "%s", "transport": "stream"}}' "$(json_escape "$url")")"
  mkdir -p -m 700 "$(dirname "$config_file")"
  chmod 700 "$(dirname "$config_file")"
  if [ -e "$config_file" ]; then
    if [ "$(cat "$config_file")" = "$text" ]; then
      chmod 600 "$config_file"
      return
    fi
    if ! record_has config-created && ! record_has config-replaced; then
      cp "$config_file" "$record_dir/config.before"
      chmod 600 "$record_dir/config.before"
      remember config-replaced "$record_dir/config.before"
      say "kept your previous $config_file for scripts/uninstall"
    fi
  else
    record_has config-replaced || remember config-created "$config_file"
  fi
  (umask 077; printf '%s\n' "$text" >"$config_file.hooktrail-new")
  mv -f "$config_file.hooktrail-new" "$config_file"
  say "wrote $config_file (mode 0600: it holds the Redis password)"
}

percent_encode() {
  local text="$1" out="" char i
  for ((i = 0; i < ${#text}; i++)); do
    char="${text:i:1}"
    case "$char" in
      [A-Za-z0-9._~-]) out+="$char" ;;
      *) out+="$(printf '%%%02X' "'$char")" ;;
    esac
  done
  printf '%s' "$out"
}

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

# The page's link, from the collector itself (`hooktrail-collector url`, the
# same code that prints it at start), and whether the collector answers on
# that address: a GET of the page shell, which needs no token.
page_url() { "$1" url; }
collector_answers() {
  local url="$1" address host port
  address="${url#http://}"
  address="${address%%/*}"
  port="${address##*:}"
  host="${address%:*}"
  host="${host#[}"
  host="${host%]}"
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" >&3
    read -r status <&3
    case "$status" in *" 200"*) exit 0 ;; *) exit 1 ;; esac' "$host" "$port" "$address" 2>/dev/null
}
wait_for_collector() {
  local url="$1" seconds="$2" deadline
  deadline=$((SECONDS + seconds))
  while ! collector_answers "$url"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

install_for_user() {
  user_paths
  mkdir -p -m 700 "$record_dir"
  remember kind "$kind"
  place_binary "$bin_dir/hooktrail-emit" "$bin/hooktrail-emit"
  if [ "$kind" = sender ]; then
    write_sender_config
    register_hook
    say "checking the delivery path (hooktrail-emit check):"
    if "$bin/hooktrail-emit" check | sed 's/^/  /'; [ "${PIPESTATUS[0]}" = 0 ]; then
      say "done: this machine sends every hook event to Redis; a collector elsewhere stores them"
    else
      warn "Redis does not take events yet (see above); hooks keep them in the spool until it does"
    fi
    say "undo: scripts/uninstall"
    return
  fi
  place_binary "$bin_dir/hooktrail-collector" "$bin/hooktrail-collector"
  if [ -f "$repo/README.md" ]; then
    mkdir -p "$(dirname "$doc_file")"
    install -m 644 "$repo/README.md" "$doc_file"
    remember file "$doc_file"
  fi
  mkdir -p "$(dirname "$unit_file")"
  install -m 644 "$repo/scripts/hooktrail-collector.service" "$unit_file"
  remember file "$unit_file"
  local service=none
  if user_systemd_works; then
    systemctl --user daemon-reload
    systemctl --user enable hooktrail-collector.service >/dev/null
    remember unit-enabled hooktrail-collector.service
    # A restart, not `enable --now`: a running collector must pick up the
    # binary just installed.
    systemctl --user restart hooktrail-collector.service
    service=systemd
    say "the collector runs as the user service hooktrail-collector (systemctl --user status hooktrail-collector)"
    say "to keep it running while you are logged out: loginctl enable-linger $USER"
  else
    say "no user systemd here (systemctl --user does not answer): start the collector yourself,"
    say "  in a terminal or tmux:  $bin/hooktrail-collector"
    say "  or in the background:   nohup $bin/hooktrail-collector >>$state_home/hooktrail/collector.log 2>&1 &"
    say "  (the unit is in $unit_file for a machine with systemd)"
  fi
  register_hook
  local url seconds
  url="$(page_url "$bin/hooktrail-collector")" || die "hooktrail-collector url failed (see above)"
  seconds="${wait_seconds:-$([ "$service" = systemd ] && echo 30 || echo 0)}"
  if [ "$seconds" -gt 0 ]; then
    say "waiting up to ${seconds}s for the collector to answer"
    if ! wait_for_collector "$url" "$seconds"; then
      [ "$service" = systemd ] && warn "see: journalctl --user -u hooktrail-collector"
      die "the collector does not answer on ${url%%#*}"
    fi
    say "the collector answers. Open the page:"
  else
    say "once the collector runs, open the page (\`hooktrail-collector url\` prints it again):"
  fi
  printf '\n  %s\n\n' "$url"
  say "undo: scripts/uninstall (keeps the database; --purge removes it)"
}

install_system() {
  [ -n "$root" ] || [ "$(id -u)" = 0 ] || die "--system needs root: sudo scripts/install --system"
  bin="$root/usr/local/bin"
  record_dir="$root/var/lib/hooktrail-install"
  record="$record_dir/record"
  mkdir -p -m 700 "$record_dir"
  remember kind system
  place_binary "$bin_dir/hooktrail-emit" "$bin/hooktrail-emit"
  place_binary "$bin_dir/hooktrail-collector" "$bin/hooktrail-collector"
  local unit="$root/etc/systemd/system/hooktrail-collector.service" env="$root/etc/hooktrail/collector.env"
  mkdir -p "$(dirname "$unit")"
  install -m 644 "$repo/scripts/hooktrail-collector-system.service" "$unit"
  remember file "$unit"
  install -d -m 700 "$(dirname "$env")"
  if [ ! -e "$env" ]; then
    # The service's own user has no home for a generated token file: give
    # it one, readable by root only.
    (umask 077; printf 'HOOKTRAIL_TOKEN=%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$env")
    remember file "$env"
  fi
  local url
  url="$(set -a; . "$env"; set +a; page_url "$bin/hooktrail-collector")"
  if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable hooktrail-collector.service >/dev/null
    remember unit-enabled hooktrail-collector.service
    systemctl restart hooktrail-collector.service
    say "waiting up to ${wait_seconds:-30}s for the collector to answer"
    wait_for_collector "$url" "${wait_seconds:-30}" || die "the collector does not answer; see: journalctl -u hooktrail-collector"
    say "the collector answers. Open the page:"
  else
    say "installed under ${root:-/} without starting it (no systemd running here):"
    say "  systemctl daemon-reload && systemctl enable --now hooktrail-collector"
    say "then open the page:"
  fi
  printf '\n  %s\n\n' "$url"
  say "the service's socket is its own: each user sends through Redis (scripts/install --sender --redis URL)"
  say "undo: scripts/uninstall --system (keeps the database; --purge removes it)"
}

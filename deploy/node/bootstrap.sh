#!/usr/bin/env bash
# wpcp node bootstrap: turns a fresh Debian 12 machine into a WordPress hosting node.
#
# Installs nginx, PHP-FPM 8.2 with the usual WordPress extensions, MariaDB, Redis, git, unzip, cron
# and WP-CLI; creates the node's directories; installs the agent's systemd unit when the repository
# has one; enables and starts the services. Safe to run again: every step checks before it acts.
#
# With --packages-only it installs the Debian packages and nothing else: no configuration, no
# directories, no WP-CLI, no unit, and no service left running or newly enabled (CI uses this so the
# stack tests can start their own nginx, PHP-FPM, MariaDB and Redis from the installed binaries).
set -euo pipefail

readonly PHP_VERSION=8.2
readonly WP_CLI_VERSION=2.12.0
readonly SITES_ROOT=/srv/wpcp
readonly NGINX_WPCP_DIR=/etc/nginx/wpcp
readonly AGENT_STATE_DIR=/var/lib/wpcp-agent
readonly WP_CLI_TARGET=/usr/local/bin/wp

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
AGENT_UNIT_SOURCE="$REPO_ROOT/deploy/systemd/wpcp-agent.service"

usage() {
  cat <<EOF
Usage: bootstrap.sh [--packages-only] [--wp-cli PATH] [--help]

Prepares this Debian 12 machine as a wpcp node. Run as root. Idempotent.

  --packages-only  Install the Debian packages only: configure, enable and start nothing, and stop
                   any service a package's install script started (CI and the stack tests).
  --wp-cli PATH    Install this WP-CLI binary (a phar or a test double) as $WP_CLI_TARGET instead
                   of downloading WP-CLI $WP_CLI_VERSION from its GitHub release.
  --help           Show this help.

Packages: nginx, php$PHP_VERSION-fpm and -cli with the WordPress extensions (mysql, curl, gd, intl,
mbstring, xml, zip, bcmath, opcache, redis, imagick when available), mariadb-server and -client,
redis-server, git, unzip, cron, curl, ca-certificates.

The package lists are refreshed (apt-get update) when something is missing or when the last
refresh by this script is more than a day old.

Full mode also: creates $SITES_ROOT, $NGINX_WPCP_DIR, $AGENT_STATE_DIR and /etc/wpcp-agent,
replaces nginx's default site with a catch-all that closes connections for unknown hostnames,
installs WP-CLI, installs deploy/systemd/wpcp-agent.service (when present) and enables it (it
starts once the node is enrolled), then enables and starts nginx, PHP-FPM, MariaDB, Redis and cron
(with systemd), or starts them through their init scripts when the machine does not run systemd
(containers). It does not install Node.js or the agent itself.
EOF
}

log() { printf 'bootstrap: %s\n' "$*"; }
die() {
  printf 'bootstrap: error: %s\n' "$*" >&2
  exit 1
}

PACKAGES_ONLY=0
WP_CLI_SOURCE=''
while [ $# -gt 0 ]; do
  case "$1" in
    --packages-only) PACKAGES_ONLY=1 ;;
    --wp-cli)
      [ $# -ge 2 ] || die '--wp-cli needs a path'
      WP_CLI_SOURCE="$2"
      shift
      ;;
    --wp-cli=*) WP_CLI_SOURCE="${1#--wp-cli=}" ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || die 'must run as root'
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
    log "warning: written for Debian 12, this is ${PRETTY_NAME:-unknown}; continuing"
  fi
fi
if [ -n "$WP_CLI_SOURCE" ]; then
  [ "$PACKAGES_ONLY" -eq 0 ] || die '--wp-cli cannot be combined with --packages-only'
  [ -f "$WP_CLI_SOURCE" ] || die "--wp-cli: no such file: $WP_CLI_SOURCE"
fi

export DEBIAN_FRONTEND=noninteractive
# The init scripts and units of the packages we install, by package.
readonly SERVICE_PACKAGES=(nginx "php$PHP_VERSION-fpm" mariadb-server redis-server cron)
service_of() {
  case "$1" in
    nginx) echo nginx ;;
    "php$PHP_VERSION-fpm") echo "php$PHP_VERSION-fpm" ;;
    mariadb-server) echo mariadb ;;
    redis-server) echo redis-server ;;
    cron) echo cron ;;
  esac
}

systemd_running() { [ -d /run/systemd/system ]; }

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# Whether a service is running, asked of systemd or, without it, of the init script.
service_running() {
  if systemd_running; then
    systemctl is-active --quiet "$1"
  elif [ -x "/etc/init.d/$1" ]; then
    "/etc/init.d/$1" status >/dev/null 2>&1
  else
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------

PACKAGES=(
  nginx
  "php$PHP_VERSION-fpm" "php$PHP_VERSION-cli" "php$PHP_VERSION-mysql" "php$PHP_VERSION-curl"
  "php$PHP_VERSION-gd" "php$PHP_VERSION-intl" "php$PHP_VERSION-mbstring" "php$PHP_VERSION-xml"
  "php$PHP_VERSION-zip" "php$PHP_VERSION-bcmath" "php$PHP_VERSION-opcache" "php$PHP_VERSION-redis"
  mariadb-server mariadb-client
  redis-server
  git unzip cron curl ca-certificates
)
OPTIONAL_PACKAGES=("php$PHP_VERSION-imagick")

apt_lists_fresh=0
apt_update_once() {
  if [ "$apt_lists_fresh" -eq 0 ]; then
    log 'apt-get update'
    apt-get update -qq
    apt_lists_fresh=1
    install -d -m 0755 "$(dirname "$APT_STAMP")"
    touch "$APT_STAMP"
  fi
}

# Package lists older than a day (or none at all): update them even when every package is
# installed, so later `apt-get download` calls (the stack tests fetch WordPress that way) find the
# current versions.
readonly APT_STAMP=/var/lib/wpcp-bootstrap/apt-updated
apt_lists_stale() {
  [ -z "$(find "$APT_STAMP" -mmin -1440 2>/dev/null)" ]
}

has_candidate() {
  local candidate
  candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')"
  [ -n "$candidate" ] && [ "$candidate" != '(none)' ]
}

# Forbid service starts while packages install (Debian's postinst scripts start what they install,
# through invoke-rc.d or deb-systemd-invoke, both of which obey policy-rc.d). Whatever policy-rc.d
# the machine already had (Docker images ship one) is put back afterwards.
readonly POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_BACKUP=''
POLICY_INSTALLED=0
restore_policy_rc_d() {
  if [ "$POLICY_INSTALLED" -eq 1 ]; then
    if [ -n "$POLICY_BACKUP" ]; then
      mv -f "$POLICY_BACKUP" "$POLICY_RC_D"
    else
      rm -f "$POLICY_RC_D"
    fi
    POLICY_INSTALLED=0
  fi
}
forbid_service_starts() {
  if [ -e "$POLICY_RC_D" ]; then
    POLICY_BACKUP="$(mktemp /usr/sbin/policy-rc.d.wpcp-backup.XXXXXX)"
    cp -p "$POLICY_RC_D" "$POLICY_BACKUP"
  fi
  trap restore_policy_rc_d EXIT
  POLICY_INSTALLED=1
  printf '#!/bin/sh\n# Written by wpcp bootstrap.sh while it installs packages.\nexit 101\n' >"$POLICY_RC_D"
  chmod 0755 "$POLICY_RC_D"
}

NEWLY_INSTALLED=()
install_packages() {
  local wanted=("${PACKAGES[@]}") missing=() pkg
  if apt_lists_stale; then apt_update_once; fi
  for pkg in "${OPTIONAL_PACKAGES[@]}"; do
    if is_installed "$pkg"; then
      wanted+=("$pkg")
    else
      # Only optional ones need the lists to decide; a fresh machine has to update anyway.
      apt_update_once
      if has_candidate "$pkg"; then wanted+=("$pkg"); else log "optional package $pkg is not available; skipped"; fi
    fi
  done
  for pkg in "${wanted[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log 'all packages already installed'
    return
  fi
  NEWLY_INSTALLED=("${missing[@]}")

  # Which services run before we touch anything, so that only what we start gets stopped.
  local svc
  SERVICES_RUNNING_BEFORE=()
  for pkg in "${SERVICE_PACKAGES[@]}"; do
    svc="$(service_of "$pkg")"
    if service_running "$svc"; then SERVICES_RUNNING_BEFORE+=("$svc"); fi
  done

  apt_update_once
  forbid_service_starts
  log "installing: ${missing[*]}"
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
  restore_policy_rc_d
}
SERVICES_RUNNING_BEFORE=()

was_running_before() {
  local svc
  for svc in "${SERVICES_RUNNING_BEFORE[@]}"; do [ "$svc" = "$1" ] && return 0; done
  return 1
}

newly_installed() {
  local pkg
  for pkg in "${NEWLY_INSTALLED[@]}"; do [ "$pkg" = "$1" ] && return 0; done
  return 1
}

# --packages-only: undo what the packages' install scripts did to services we did not ask for.
# policy-rc.d forbade starts, so normally nothing runs; this catches a package that started a
# daemon another way. Packages already installed before this run are left as they were.
leave_services_stopped() {
  local pkg svc
  for pkg in "${SERVICE_PACKAGES[@]}"; do
    newly_installed "$pkg" || continue
    svc="$(service_of "$pkg")"
    if systemd_running; then
      if ! was_running_before "$svc" && systemctl is-active --quiet "$svc"; then
        log "stopping $svc (started by its package)"
        systemctl stop "$svc"
      fi
      systemctl disable --quiet "$svc" 2>/dev/null || true
    else
      if ! was_running_before "$svc" && service_running "$svc"; then
        log "stopping $svc (started by its package)"
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
      fi
      # Without systemd nothing starts these at boot in a container; the unit symlinks that
      # deb-systemd-helper made are removed so a later systemd boot does not start them either.
      if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --quiet "$svc" >/dev/null 2>&1 || true
      fi
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# Configuration (full mode only)
# ---------------------------------------------------------------------------------------------

create_directories() {
  install -d -m 0755 -o root -g root "$SITES_ROOT"
  # Reserved for nginx configuration the agent manages besides server blocks (which go to
  # /etc/nginx/sites-enabled/wpcp-<site>--<env>.conf), e.g. FastCGI cache zones.
  install -d -m 0755 -o root -g root "$NGINX_WPCP_DIR"
  install -d -m 0700 -o root -g root "$AGENT_STATE_DIR"
  # Optional settings of the agent's unit (EnvironmentFile=-/etc/wpcp-agent/agent.env).
  install -d -m 0750 -o root -g root /etc/wpcp-agent
}

configure_nginx() {
  # A request for a hostname no environment has gets its connection closed (444), instead of
  # Debian's welcome page or, worse, the first site in alphabetical order.
  write_if_changed /etc/nginx/sites-available/wpcp-default.conf 0644 <<'EOF'
# Managed by wpcp bootstrap.sh: unknown hostnames are refused.
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name _;
    return 444;
}
EOF
  if [ -L /etc/nginx/sites-enabled/default ] &&
    [ "$(readlink /etc/nginx/sites-enabled/default)" = /etc/nginx/sites-available/default ]; then
    rm -f /etc/nginx/sites-enabled/default
  fi
  ln -sfn /etc/nginx/sites-available/wpcp-default.conf /etc/nginx/sites-enabled/000-wpcp-default.conf
  nginx -t -q
}

# write_if_changed FILE MODE < content: replaces FILE only when its content differs.
write_if_changed() {
  local target="$1" mode="$2" tmp
  tmp="$(mktemp "$target.XXXXXX")"
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$target"
    log "wrote $target"
    CONFIG_CHANGED=1
  fi
}
CONFIG_CHANGED=0

install_wp_cli() {
  if [ -n "$WP_CLI_SOURCE" ]; then
    if [ -f "$WP_CLI_TARGET" ] && cmp -s "$WP_CLI_SOURCE" "$WP_CLI_TARGET"; then
      log "WP-CLI at $WP_CLI_TARGET is already the given binary"
    else
      install -m 0755 -o root -g root "$WP_CLI_SOURCE" "$WP_CLI_TARGET"
      log "installed $WP_CLI_SOURCE as $WP_CLI_TARGET"
    fi
    return
  fi
  if [ -x "$WP_CLI_TARGET" ] &&
    "$WP_CLI_TARGET" --allow-root --version 2>/dev/null | grep -qx "WP-CLI $WP_CLI_VERSION"; then
    log "WP-CLI $WP_CLI_VERSION already installed"
    return
  fi
  local base="https://github.com/wp-cli/wp-cli/releases/download/v$WP_CLI_VERSION"
  local phar="wp-cli-$WP_CLI_VERSION.phar" dir
  dir="$(mktemp -d)"
  log "downloading WP-CLI $WP_CLI_VERSION"
  curl -fsSL --proto '=https' --retry 3 -o "$dir/$phar" "$base/$phar"
  curl -fsSL --proto '=https' --retry 3 -o "$dir/$phar.sha512" "$base/$phar.sha512"
  (cd "$dir" && printf '%s  %s\n' "$(tr -d '[:space:]' <"$phar.sha512")" "$phar" | sha512sum -c --quiet -)
  install -m 0755 -o root -g root "$dir/$phar" "$WP_CLI_TARGET"
  rm -rf "$dir"
  "$WP_CLI_TARGET" --allow-root --version
}

install_agent_unit() {
  if [ ! -f "$AGENT_UNIT_SOURCE" ]; then
    log "no $AGENT_UNIT_SOURCE in this checkout; agent unit not installed"
    return
  fi
  write_if_changed /etc/systemd/system/wpcp-agent.service 0644 <"$AGENT_UNIT_SOURCE"
  if systemd_running; then
    systemctl daemon-reload
    systemctl enable --quiet wpcp-agent.service
    log 'wpcp-agent.service enabled (it starts once the agent is enrolled; see the README)'
  else
    log 'no systemd here: run the agent under your own supervisor'
  fi
}

start_services() {
  local pkg svc
  for pkg in "${SERVICE_PACKAGES[@]}"; do
    svc="$(service_of "$pkg")"
    if systemd_running; then
      systemctl enable --quiet --now "$svc"
    elif service_running "$svc"; then
      log "$svc already running"
    else
      # No systemd (a container): start the service directly through its init script, which
      # policy-rc.d does not govern.
      log "starting $svc"
      "/etc/init.d/$svc" start >/dev/null
    fi
  done
  # A re-run that changed nginx's configuration: the running nginx picks it up.
  if [ "$CONFIG_CHANGED" -eq 1 ]; then
    if systemd_running; then systemctl reload nginx; else /etc/init.d/nginx reload >/dev/null; fi
  fi
}

# ---------------------------------------------------------------------------------------------

started_at=$SECONDS
install_packages
if [ "$PACKAGES_ONLY" -eq 1 ]; then
  leave_services_stopped
  log "packages ready in $((SECONDS - started_at)) s (--packages-only: nothing configured or started)"
  exit 0
fi

create_directories
configure_nginx
install_wp_cli
install_agent_unit
start_services
log "node ready in $((SECONDS - started_at)) s"

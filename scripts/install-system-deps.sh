#!/usr/bin/env bash
# Installs the real services the tests run (MariaDB, Docker engine, Prometheus,
# Alertmanager, busybox for a local image, Chromium for the page tests) and the benchmark peers, when missing.
# Debian/Ubuntu only; starts nothing (the test suite starts what it needs).
set -euo pipefail

need=()
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check mariadbd mariadb-server
check mariadb mariadb-client
check dockerd docker.io
check prometheus prometheus
check promtool prometheus
check prometheus-alertmanager prometheus-alertmanager
check amtool prometheus-alertmanager
check docker-compose docker-compose
check prometheus-node-exporter prometheus-node-exporter
check prometheus-blackbox-exporter prometheus-blackbox-exporter
check prometheus-process-exporter prometheus-process-exporter
check prometheus-mysqld-exporter prometheus-mysqld-exporter
check webhook webhook
check chromium chromium  # the receiver's page tests (harness/browser.py)
[ -x /bin/busybox ] || need+=(busybox-static)
check openssl openssl  # certificates for the TLS tests (tests/security/certs.py)

if [ ${#need[@]} -eq 0 ]; then
    echo "system packages: all present"
    exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "system packages: installing ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "system packages: done"

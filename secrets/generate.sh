#!/usr/bin/env bash
# Writes a random value into every missing secret file of compose.yaml (./secrets/<name>.txt).
# Existing files are kept: the database and Jenkins were initialised with them, so rotating
# one is a deliberate act (secrets/README.md says how). Run it again safely at any time.
#
#   secrets/generate.sh            # into the folder this script lives in
#   secrets/generate.sh DIR        # into DIR (tests use a temporary one)
set -euo pipefail

dir=${1:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$dir"
# Other users on the host cannot reach the files (0700 folder); the containers can, because
# Compose bind-mounts each file by its full path and their users (mysql 999, grafana 472,
# stackmedic 10001, ...) differ from yours, so the files themselves are world-readable (0644).
chmod 0700 "$dir"

random_text() { # $1 characters of [A-Za-z0-9]
    local out=""
    while [ "${#out}" -lt "$1" ]; do
        out+=$(head -c 96 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
    done
    printf '%s' "${out:0:$1}"
}

random_jenkins_token() { # the format Jenkins accepts for a fixed API token: 11 + 32 hex digits
    printf '11%s' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
}

made=()
write() { # name value
    local file="$dir/$1.txt"
    if [ -s "$file" ]; then
        return
    fi
    (umask 022 && printf '%s' "$2" >"$file")
    chmod 0644 "$file"
    made+=("$1")
}

write mysql_root_password "$(random_text 32)"
write mysql_exporter_password "$(random_text 32)"
write mysql_backup_password "$(random_text 32)"
write mysql_restore_password "$(random_text 32)"
write petclinic_db_password "$(random_text 32)"
write wordpress_db_password "$(random_text 32)"
write receiver_webhook_token "$(random_text 48)"
write jenkins_token "$(random_jenkins_token)"
write jenkins_admin_password "$(random_text 24)"
write grafana_admin_password "$(random_text 24)"

if [ ${#made[@]} -eq 0 ]; then
    echo "secrets: all present in $dir (kept)"
else
    echo "secrets: wrote ${made[*]} into $dir"
fi

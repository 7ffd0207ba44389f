#!/bin/bash
# Sourced by the MariaDB image's entrypoint on the first start only (empty data volume):
# the application databases and least-privilege accounts, each password read from its
# compose secret. `docker_process_sql` is the entrypoint's own client, logged in as root.
# (tests/deploy_stack/test_mysql_init.py runs it against a real MariaDB.)

secrets_dir=${STACKMEDIC_SECRETS_DIR:-/run/secrets}

secret() { # the SQL string literal of secret <name> (quotes and backslashes escaped)
    local value
    value=$(cat "$secrets_dir/$1")
    value=${value//\\/\\\\}
    value=${value//\'/\\\'}
    printf "'%s'" "$value"
}

docker_process_sql <<SQL
CREATE DATABASE IF NOT EXISTS petclinic CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS wordpress CHARACTER SET utf8mb4;

-- the applications: their own database, nothing else
CREATE USER IF NOT EXISTS 'petclinic'@'%' IDENTIFIED BY $(secret petclinic_db_password);
GRANT ALL PRIVILEGES ON petclinic.* TO 'petclinic'@'%';
CREATE USER IF NOT EXISTS 'wordpress'@'%' IDENTIFIED BY $(secret wordpress_db_password);
GRANT ALL PRIVILEGES ON wordpress.* TO 'wordpress'@'%';

-- stackmedic-exporter: is the server up, are the tables there and do they have rows
-- (SELECT on the watched databases is all it reads; nothing global)
CREATE USER IF NOT EXISTS 'stackmedic_exporter'@'%' IDENTIFIED BY $(secret mysql_exporter_password)
    WITH MAX_USER_CONNECTIONS 5;
GRANT SELECT ON petclinic.* TO 'stackmedic_exporter'@'%';
GRANT SELECT ON wordpress.* TO 'stackmedic_exporter'@'%';

-- The accounts of stackmedic-job: exactly jobs/grants.py (docs/jobs.md "Least privilege").
-- None holds SET USER, SUPER or anything global beyond reading routines and binary logs.

-- backup: what mariadb-dump --single-transaction --no-tablespaces needs, read-only;
-- mysql.proc so that procedures and functions are in the dump (MariaDB < 11.3)
CREATE USER IF NOT EXISTS 'stackmedic_backup'@'%' IDENTIFIED BY $(secret mysql_backup_password);
GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON petclinic.* TO 'stackmedic_backup'@'%';
GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON wordpress.* TO 'stackmedic_backup'@'%';
GRANT SELECT ON mysql.proc TO 'stackmedic_backup'@'%';

-- verify: its own scratch databases (stackmedic_verify_*) and nothing else, so that a
-- tampered backup loaded during verify cannot reach a live database
CREATE USER IF NOT EXISTS 'stackmedic_verify'@'%' IDENTIFIED BY $(secret mysql_verify_password);
GRANT ALL PRIVILEGES ON \`stackmedic\\_verify\\_%\`.* TO 'stackmedic_verify'@'%';

-- restore: the application databases, restore's own schemas (stackmedic_restore_*),
-- and mysql.proc for the safety dump's routines
CREATE USER IF NOT EXISTS 'stackmedic_restore'@'%' IDENTIFIED BY $(secret mysql_restore_password);
GRANT ALL PRIVILEGES ON petclinic.* TO 'stackmedic_restore'@'%';
GRANT ALL PRIVILEGES ON wordpress.* TO 'stackmedic_restore'@'%';
GRANT ALL PRIVILEGES ON \`stackmedic\\_restore\\_%\`.* TO 'stackmedic_restore'@'%';
GRANT SELECT ON mysql.proc TO 'stackmedic_restore'@'%';

-- point-in-time recovery: read the binary logs over the client connection
CREATE USER IF NOT EXISTS 'stackmedic_binlog'@'%' IDENTIFIED BY $(secret mysql_binlog_password);
GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'stackmedic_binlog'@'%';
SQL

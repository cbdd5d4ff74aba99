#!/bin/sh
# Nightly backup (cron or a systemd timer as the postgres user): a custom-format dump, kept 14 days.
# Restore (tested by tests/test_production_recipe.py):
#   createdb -O newsletter newsletter_restored
#   pg_restore --no-owner --role=newsletter -d newsletter_restored FILE.dump
set -eu
DATABASE="${1:-newsletter}"
TARGET="${BACKUP_DIR:-/var/backups/newsletter}"
mkdir -p "$TARGET"
pg_dump --format=custom --no-owner --file="$TARGET/$DATABASE-$(date -u +%Y%m%dT%H%M%SZ).dump" "$DATABASE"
find "$TARGET" -name "$DATABASE-*.dump" -mtime +14 -delete

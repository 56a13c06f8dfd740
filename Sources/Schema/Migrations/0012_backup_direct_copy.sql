-- Full backups may copy the data directory directly (backup.data_directory) between
-- pg_backup_start() and pg_backup_stop() on osmose-backupd's own connection, as
-- pgBackRest does, instead of streaming it through pg_basebackup. Those two
-- functions are for superusers unless granted.

GRANT EXECUTE ON FUNCTION pg_catalog.pg_backup_start(text, boolean) TO osmose_backup;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_backup_stop(boolean) TO osmose_backup;

-- Incremental backups (the suite's files changed since the previous backup, with
-- the whole tree's list; the cluster from the newest full and the WAL archive).
-- `base` is the full backup an incremental restores the cluster from; `needs`
-- every backup that must stay while this one does (its base and the backups
-- holding files of its tree). Prune keeps them; the keyring counts them.

ALTER TABLE ops.backups DROP CONSTRAINT backups_kind_check;
ALTER TABLE ops.backups ADD CONSTRAINT backups_kind_check CHECK (kind IN ('full', 'incremental'));
ALTER TABLE ops.backups ADD COLUMN base text;
ALTER TABLE ops.backups ADD COLUMN needs text[] NOT NULL DEFAULT '{}';
ALTER TABLE ops.backups ADD CONSTRAINT backups_base_check CHECK ((kind = 'incremental') = (base IS NOT NULL));

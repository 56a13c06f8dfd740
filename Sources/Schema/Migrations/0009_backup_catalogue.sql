-- The backup catalogue as the database sees it. The store's summaries and
-- encrypted manifests are authoritative for restores (the database may be the
-- thing being restored); this copy lets the keyring say which backups need which
-- recipient's identity, and osmose-backupd's prune mark what it removed.

CREATE TABLE ops.backups (
    id                  text PRIMARY KEY CHECK (id ~ '^[0-9]{8}T[0-9]{6}Z$'),
    kind                text NOT NULL CHECK (kind IN ('full')),
    store               text NOT NULL,
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz NOT NULL,
    wal_start           text NOT NULL CHECK (wal_start ~ '^[0-9A-F]{24}$'),
    wal_end             text NOT NULL CHECK (wal_end ~ '^[0-9A-F]{24}$'),
    manifest_sha256     text NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    parent              text,
    -- Fingerprints of the age recipients it is encrypted to (keys.public_keys.fingerprint).
    recipients          text[] NOT NULL CHECK (cardinality(recipients) > 0),
    bytes               bigint NOT NULL CHECK (bytes > 0),
    state               text NOT NULL DEFAULT 'retained' CHECK (state IN ('retained', 'pruned')),
    pruned_at           timestamptz,
    CHECK ((state = 'pruned') = (pruned_at IS NOT NULL))
);

CREATE INDEX backups_recipients ON ops.backups USING gin (recipients) WHERE state = 'retained';

REVOKE ALL ON ops.backups FROM PUBLIC;
GRANT SELECT, INSERT ON ops.backups TO osmose_backup;
GRANT UPDATE (state, pruned_at) ON ops.backups TO osmose_backup;
GRANT USAGE ON SCHEMA ops TO osmose_auditor;
GRANT SELECT ON ops.backups TO osmose_keyd, osmose_auditor, osmose_retention, osmose_dsar;

-- Backup-signing keys (docs/backup.md, "Signatures"): the Ed25519 keys osmose-backupd
-- signs every file of the backup store with (each backup, each WAL file, prune
-- tombstones, the store's head and each copy's state), so that the backup host,
-- which holds only the age recipients, cannot write a backup that passes for the
-- suite's. The private half is a credential of osmose-backupd (and of PostgreSQL's
-- archive_command); the keyring records the verifier key and the lifecycle, as for
-- the journal signing key: pending (co-signing once osmose-backupd holds it) →
-- primary → decrypt-only (the old primary, co-signing during the overlap) →
-- retired → destroyed. Verifiers never read keys from here or from the store:
-- each verifying machine lists them in backup.verifier_keys.

ALTER TABLE keys.public_keys DROP CONSTRAINT public_keys_purpose_check;
ALTER TABLE keys.public_keys ADD CONSTRAINT public_keys_purpose_check
    CHECK (purpose IN ('journal-signing', 'backup-recipient', 'backup-signing'));

-- One primary and at most one pending backup-signing key (one rollover at a time).
CREATE UNIQUE INDEX public_keys_one_backup_signing_primary ON keys.public_keys (purpose) WHERE purpose = 'backup-signing' AND state = 'primary';
CREATE UNIQUE INDEX public_keys_one_backup_signing_pending ON keys.public_keys (purpose) WHERE purpose = 'backup-signing' AND state = 'pending';

-- The key ids (8 hex digits) whose signatures each backup carries: osmose-keyd
-- promotes a pending key once the newest backup carries its signature (proof that
-- osmose-backupd holds it), and retires the old one after the overlap.
ALTER TABLE ops.backups ADD COLUMN signed_by text[] NOT NULL DEFAULT '{}'
    CHECK (array_to_string(signed_by, ',') ~ '^([0-9a-f]{8}(,[0-9a-f]{8})*)?$');

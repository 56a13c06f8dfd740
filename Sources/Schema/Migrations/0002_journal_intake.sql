-- The journal's intake: where every access event lands first, in the same
-- transaction as the change it describes (or, for a read, before the response
-- leaves). osmose-journald later sequences intake rows into the hash-chained
-- journal. The care role may only INSERT here: it can neither read back nor alter
-- what it wrote.

CREATE TABLE journal.intake (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    occurred_at     timestamptz NOT NULL,
    source          text NOT NULL CHECK (source ~ '^[a-z][a-z0-9-]{0,62}$'),
    request_id      text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    actor_user_id   uuid,
    actor_username  text CHECK (length(actor_username) <= 128),
    actor_role      text CHECK (actor_role IN ('agent', 'manager', 'admin', 'system', 'dpo', 'security-officer', 'sysadmin')),
    actor_team      text CHECK (length(actor_team) <= 64),
    action          text NOT NULL CHECK (action IN (
                        'login', 'logout', 'read', 'create', 'update', 'delete', 'export',
                        'user-admin', 'key-admin', 'journal-admin', 'backup-admin', 'retention-admin', 'subject-request')),
    object_type     text NOT NULL CHECK (object_type ~ '^[a-z][a-z_-]{0,62}$'),
    object_id       text CHECK (length(object_id) <= 128),
    patient_id      uuid,
    purpose         text CHECK (purpose IN ('care', 'coordination', 'administration', 'audit', 'subject-request')),
    result          text NOT NULL CHECK (result IN ('success', 'denied', 'error')),
    reason          text CHECK (length(reason) <= 200),
    client_ip       inet,
    user_agent      text CHECK (length(user_agent) <= 512)
);

CREATE INDEX intake_patient ON journal.intake (patient_id) WHERE patient_id IS NOT NULL;

REVOKE ALL ON journal.intake FROM PUBLIC;
GRANT INSERT ON journal.intake TO osmose_care, osmose_keyd, osmose_backup, osmose_retention, osmose_dsar;
GRANT USAGE ON SEQUENCE journal.intake_id_seq TO osmose_care, osmose_keyd, osmose_backup, osmose_retention, osmose_dsar;
GRANT SELECT ON journal.intake TO osmose_journald, osmose_auditor;

-- Data-subject requests (docs/dpo-runbook.md): the DPO's register, the deadlines
-- the law sets, the evidence file of every step, and the work osmose-dsard does
-- with the master key. Owned by the SubjectRequests library; osmose_dsar is its role.
--
-- Values that are personal data (the requester's name and contact, the identity
-- documents seen, notes, attached documents, redacted text, an approved pack) are
-- AES-256-GCM ciphertexts bound to their table, column and row, declared in the
-- registry of encrypted columns (Sources/CareRecords/EncryptedColumns.swift), so
-- that key rotation re-encrypts them and key destruction counts them.

CREATE TABLE dsar.requests (
    id                      uuid PRIMARY KEY,
    number                  bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind                    text NOT NULL CHECK (kind IN ('access', 'rectification', 'restriction', 'erasure', 'objection', 'portability')),
    subject_type            text NOT NULL CHECK (subject_type IN ('patient', 'staff')),
    patient_id              uuid REFERENCES care.patients (id),
    staff_user_id           uuid REFERENCES care.users (id),
    requester_capacity      text NOT NULL CHECK (requester_capacity IN ('patient', 'legal-representative', 'heir', 'chosen-doctor', 'staff-member')),
    representation          text CHECK (representation IN ('minor', 'protected-adult')),
    requester_name          bytea NOT NULL,
    requester_contact       bytea,
    received_at             timestamptz NOT NULL,
    received_on             date NOT NULL,
    health_information      boolean NOT NULL,
    latest_information_on   date,
    identity_checked_at     timestamptz,
    identity_checked_by     text CHECK (length(identity_checked_by) BETWEEN 1 AND 200),
    identity_check          bytea,
    extension_notice_on     date,
    late_acknowledged       boolean NOT NULL DEFAULT false,
    status                  text NOT NULL CHECK (status IN ('open', 'closed')),
    outcome                 text CHECK (outcome IN ('granted', 'partially-granted', 'refused', 'withdrawn', 'no-data')),
    closed_at               timestamptz,
    opened_at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    opened_by               text NOT NULL CHECK (length(opened_by) BETWEEN 1 AND 200),
    CHECK ((subject_type = 'patient') = (patient_id IS NOT NULL)),
    CHECK ((subject_type = 'staff') = (staff_user_id IS NOT NULL)),
    CHECK ((subject_type = 'staff') = (requester_capacity = 'staff-member')),
    CHECK ((requester_capacity = 'legal-representative') = (representation IS NOT NULL)),
    CHECK ((identity_checked_at IS NULL) = (identity_checked_by IS NULL) AND (identity_checked_at IS NULL) = (identity_check IS NULL)),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL) AND (status = 'closed') = (outcome IS NOT NULL))
);
CREATE INDEX requests_patient ON dsar.requests (patient_id) WHERE patient_id IS NOT NULL;
CREATE INDEX requests_open ON dsar.requests (received_on) WHERE status = 'open';

-- Each deadline with the rule that gave it; an extension puts the one-month
-- deadline out of force and adds the extended one.
CREATE TABLE dsar.deadlines (
    request_id      uuid NOT NULL REFERENCES dsar.requests (id),
    rule            text NOT NULL CHECK (rule IN ('gdpr-one-month', 'gdpr-extended', 'csp-reflection', 'csp-eight-days', 'csp-two-months')),
    earliest_at     timestamptz,
    due_on          date,
    citation        text NOT NULL,
    in_force        boolean NOT NULL DEFAULT true,
    CHECK ((earliest_at IS NULL) <> (due_on IS NULL)),
    PRIMARY KEY (request_id, rule)
);

-- The DPO's notes, the reasoned extension notice and the reasoned answer.
CREATE TABLE dsar.notes (
    id          uuid PRIMARY KEY,
    request_id  uuid NOT NULL REFERENCES dsar.requests (id),
    kind        text NOT NULL CHECK (kind IN ('note', 'extension-notice', 'answer')),
    body        bytea NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    written_by  text NOT NULL CHECK (length(written_by) BETWEEN 1 AND 200)
);
CREATE INDEX notes_request ON dsar.notes (request_id, written_at);

-- Documents received with a request (a letter, a copy of an identity document),
-- encrypted: never in clear on disk.
CREATE TABLE dsar.documents (
    id           uuid PRIMARY KEY,
    request_id   uuid NOT NULL REFERENCES dsar.requests (id),
    file_name    bytea NOT NULL,
    media_type   text NOT NULL CHECK (media_type ~ '^[a-z0-9.+-]+/[a-z0-9.+-]+$'),
    size         bigint NOT NULL CHECK (size BETWEEN 0 AND 33554432),
    sha256       bytea NOT NULL CHECK (octet_length(sha256) = 32),
    content      bytea NOT NULL,
    attached_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    attached_by  text NOT NULL CHECK (length(attached_by) BETWEEN 1 AND 200)
);
CREATE INDEX documents_request ON dsar.documents (request_id);

-- Text removed from an access pack at review (a third party named in a note):
-- where, why, and the text itself (encrypted), so that the pack can be built
-- again with the same redactions and the evidence says what was removed.
CREATE TABLE dsar.redactions (
    id              uuid PRIMARY KEY,
    request_id      uuid NOT NULL REFERENCES dsar.requests (id),
    table_name      text NOT NULL,
    row_id          text NOT NULL,
    column_name     text NOT NULL,
    removed_text    bytea NOT NULL,
    removed_sha256  bytea NOT NULL CHECK (octet_length(removed_sha256) = 32),
    reason          text NOT NULL CHECK (reason IN ('third-party', 'other-patient')),
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    recorded_by     text NOT NULL CHECK (length(recorded_by) BETWEEN 1 AND 200)
);
CREATE INDEX redactions_request ON dsar.redactions (request_id);

-- The access pack the DPO approved, kept encrypted until it is released, then
-- only its digests: a pack is released once.
CREATE TABLE dsar.packs (
    id                  uuid PRIMARY KEY,
    request_id          uuid NOT NULL UNIQUE REFERENCES dsar.requests (id),
    content             bytea,
    content_sha256      bytea NOT NULL CHECK (octet_length(content_sha256) = 32),
    checkpoint_id       bigint NOT NULL,
    consultations       integer NOT NULL CHECK (consultations >= 0),
    staff_names         boolean NOT NULL,
    approved_at         timestamptz NOT NULL,
    approved_by         text NOT NULL CHECK (length(approved_by) BETWEEN 1 AND 200),
    released_at         timestamptz,
    released_by         text,
    sealed_sha256       bytea CHECK (octet_length(sealed_sha256) = 32),
    sealed_to           text,
    delivered_at        timestamptz,
    delivery_method     text CHECK (delivery_method IN ('post', 'hand', 'secure-mail', 'download')),
    CHECK ((released_at IS NULL) = (content IS NOT NULL)),
    CHECK ((released_at IS NULL) = (sealed_sha256 IS NULL) AND (released_at IS NULL) = (sealed_to IS NULL) AND (released_at IS NULL) = (released_by IS NULL)),
    CHECK ((delivered_at IS NULL) = (delivery_method IS NULL) AND (delivered_at IS NULL OR released_at IS NOT NULL))
);

-- A rectification applied through the care records (a new version carrying the
-- request's id), and who read the old value meanwhile (GDPR art. 19).
CREATE TABLE dsar.rectifications (
    id                  uuid PRIMARY KEY,
    request_id          uuid NOT NULL REFERENCES dsar.requests (id),
    patient_id          uuid NOT NULL REFERENCES care.patients (id),
    fields              text[] NOT NULL,
    old_version         integer NOT NULL,
    new_version         integer NOT NULL,
    old_written_at      timestamptz NOT NULL,
    rectified_at        timestamptz NOT NULL,
    journal_request_id  text NOT NULL,
    recipients          jsonb,
    recipients_sha256   bytea CHECK (octet_length(recipients_sha256) = 32),
    recipients_listed_at timestamptz,
    CHECK ((recipients IS NULL) = (recipients_sha256 IS NULL) AND (recipients IS NULL) = (recipients_listed_at IS NULL))
);
CREATE INDEX rectifications_request ON dsar.rectifications (request_id);

-- The evidence file: every step of a request, hash-chained (hash = SHA-256 of the
-- previous hash and the step's canonical JSON), each also a journal event whose
-- reason carries the step's hash. Append-only, like the journal.
CREATE TABLE dsar.steps (
    request_id          uuid NOT NULL REFERENCES dsar.requests (id),
    position            integer NOT NULL CHECK (position >= 1),
    occurred_at         timestamptz NOT NULL,
    actor               text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    kind                text NOT NULL CHECK (kind ~ '^[a-z][a-z-]{1,40}$'),
    body                text NOT NULL,
    previous_hash       bytea NOT NULL CHECK (octet_length(previous_hash) = 32),
    hash                bytea NOT NULL CHECK (octet_length(hash) = 32),
    journal_request_id  text NOT NULL,
    PRIMARY KEY (request_id, position)
);

CREATE FUNCTION dsar.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dsar.%: % refused, the evidence file is append-only', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER steps_append_only BEFORE UPDATE OR DELETE ON dsar.steps FOR EACH ROW EXECUTE FUNCTION dsar.refuse_change();
CREATE TRIGGER steps_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON dsar.steps FOR EACH STATEMENT EXECUTE FUNCTION dsar.refuse_change();

-- Work that needs the master key, queued by `osmosectl dsar … --queue` for
-- osmose-dsard (which holds the key as a credential); its output is an age file,
-- never clear text.
CREATE TABLE dsar.jobs (
    id              uuid PRIMARY KEY,
    operation       jsonb NOT NULL,
    requested_by    text NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 200),
    requested_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    state           text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    started_at      timestamptz,
    finished_at     timestamptz,
    result          jsonb,
    output          bytea,
    error           text,
    CHECK ((state IN ('done', 'failed')) = (finished_at IS NOT NULL))
);
CREATE INDEX jobs_queued ON dsar.jobs (requested_at) WHERE state = 'queued';

CREATE FUNCTION dsar.notify_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('osmose_dsar_jobs', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify AFTER INSERT ON dsar.jobs FOR EACH STATEMENT EXECUTE FUNCTION dsar.notify_job();

-- New ciphertexts only under the primary column key (as migration 0007 does for
-- the care tables): one trigger function per table, its encrypted columns spelled out.
DO $$
DECLARE
    spec record;
    checks text;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('requests', ARRAY['requester_name', 'requester_contact', 'identity_check']),
            ('notes', ARRAY['body']),
            ('documents', ARRAY['file_name', 'content']),
            ('redactions', ARRAY['removed_text']),
            ('packs', ARRAY['content'])
        ) AS s (table_name, columns)
    LOOP
        SELECT string_agg(format(
            $f$IF NEW.%1$I IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.%1$I IS DISTINCT FROM OLD.%1$I) THEN
                used := used || keys.ciphertext_key(NEW.%1$I);
            END IF;$f$, c), E'\n')
        INTO checks
        FROM unnest(spec.columns) AS c;
        checks := checks || format($f$
            IF cardinality(used) > 0 THEN
                PERFORM keys.require_primary_all(used, 'column', %L);
            END IF;$f$, 'dsar.' || spec.table_name);
        EXECUTE format(
            'CREATE FUNCTION keys.%I() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS %L',
            'primary_key_only_' || spec.table_name,
            'DECLARE used integer[] := ''{}''; BEGIN ' || checks || ' RETURN NEW; END');
        EXECUTE format(
            'CREATE TRIGGER primary_key_only BEFORE INSERT OR UPDATE ON dsar.%I FOR EACH ROW EXECUTE FUNCTION keys.%I()',
            spec.table_name, 'primary_key_only_' || spec.table_name);
    END LOOP;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA dsar FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON dsar.requests, dsar.deadlines, dsar.notes, dsar.documents, dsar.redactions, dsar.packs, dsar.rectifications, dsar.jobs TO osmose_dsar;
GRANT DELETE ON dsar.redactions TO osmose_dsar;
GRANT SELECT, INSERT ON dsar.steps TO osmose_dsar;
GRANT USAGE ON SEQUENCE dsar.requests_number_seq TO osmose_dsar;

-- osmose-keyd rewrites these ciphertexts in place during a rotation, nothing else.
GRANT USAGE ON SCHEMA dsar TO osmose_keyd;
GRANT SELECT (id, requester_name, requester_contact, identity_check), UPDATE (requester_name, requester_contact, identity_check) ON dsar.requests TO osmose_keyd;
GRANT SELECT (id, body), UPDATE (body) ON dsar.notes TO osmose_keyd;
GRANT SELECT (id, file_name, content), UPDATE (file_name, content) ON dsar.documents TO osmose_keyd;
GRANT SELECT (id, removed_text), UPDATE (removed_text) ON dsar.redactions TO osmose_keyd;
GRANT SELECT (id, content), UPDATE (content) ON dsar.packs TO osmose_keyd;

-- The consultations owed to the patient, with their proofs: the journal, read only.
GRANT SELECT ON journal.entries, journal.tiles, journal.checkpoints, journal.head TO osmose_dsar;

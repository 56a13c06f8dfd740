-- osmose-console: the web console of the DPO, the security officer and sysadmins.
-- Its staff accounts live apart from the care accounts (care.users): a staff
-- member never acts in the care service, and a care account never signs in to
-- the console. Its role reads what its pages show and may only INSERT events
-- into the journal intake, like every daemon: no event, no page.

-- The role's name is written as a quoted literal, as in 0001: scripts/pg reads the
-- roles it lets the scripts' user connect as (peer map) from such literals.
DO $$
DECLARE
    role_name text := 'osmose_console';
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', role_name);
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

CREATE SCHEMA IF NOT EXISTS console;
REVOKE ALL ON SCHEMA console FROM PUBLIC;
GRANT USAGE ON SCHEMA console TO osmose_console;

-- One row per staff member. The TOTP seed is sealed (AES-256-GCM, bound to the
-- account's id) with the console's own key, which only osmose-console holds: a
-- copy of this table opens no second factor. It is pending until the first code
-- confirms the enrolment.
CREATE TABLE console.staff (
    id                   uuid PRIMARY KEY,
    username             text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    display_name         text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    role                 text NOT NULL CHECK (role IN ('dpo', 'security-officer', 'sysadmin')),
    password_hash        text NOT NULL,
    totp_seed            bytea,
    totp_pending_seed    bytea,
    totp_enrolled_at     timestamptz,
    -- The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step       bigint NOT NULL DEFAULT 0,
    disabled             boolean NOT NULL DEFAULT false,
    failed_attempts      integer NOT NULL DEFAULT 0,
    locked_until         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((totp_seed IS NULL) = (totp_enrolled_at IS NULL))
);

-- Single-use recovery codes, kept as SHA-256 (they carry 100 random bits).
CREATE TABLE console.recovery_codes (
    staff_id    uuid NOT NULL REFERENCES console.staff (id),
    code_hash   bytea NOT NULL CHECK (octet_length(code_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    used_at     timestamptz,
    PRIMARY KEY (staff_id, code_hash)
);

-- Sessions: the browser holds a 256-bit token in a cookie, the table its SHA-256.
-- A session opened by the password alone is at stage 'second-factor' (or
-- 'enrolment' before a TOTP seed exists) and shows no page; the second factor
-- replaces it with a 'complete' one.
CREATE TABLE console.sessions (
    token_hash    bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    staff_id      uuid NOT NULL REFERENCES console.staff (id),
    stage         text NOT NULL CHECK (stage IN ('second-factor', 'enrolment', 'complete')),
    csrf_token    text NOT NULL CHECK (length(csrf_token) = 43),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX console_sessions_staff ON console.sessions (staff_id);

REVOKE ALL ON ALL TABLES IN SCHEMA console FROM PUBLIC;
GRANT SELECT, UPDATE (failed_attempts, locked_until, totp_seed, totp_pending_seed, totp_enrolled_at, totp_last_step) ON console.staff TO osmose_console;
GRANT SELECT, INSERT, DELETE, UPDATE (used_at) ON console.recovery_codes TO osmose_console;
GRANT SELECT, INSERT, UPDATE (last_seen_at, revoked_at) ON console.sessions TO osmose_console;

-- The journal: its events (INSERT only on the intake), and what the security
-- officer's pages read (as osmose_auditor does).
GRANT USAGE ON SCHEMA journal TO osmose_console;
GRANT INSERT ON journal.intake TO osmose_console;
GRANT USAGE ON SEQUENCE journal.intake_id_seq TO osmose_console;
GRANT SELECT ON journal.entries, journal.tiles, journal.checkpoints, journal.head TO osmose_console;

-- The sysadmin's pages: the backup catalogue and the keyring's inventory (key
-- states and the census of values under each key: ciphertexts are counted by
-- their key id, never decrypted; the console holds no master key).
GRANT USAGE ON SCHEMA ops, keys, care TO osmose_console;
GRANT SELECT ON ops.backups TO osmose_console;
GRANT SELECT ON keys.data_keys, keys.rotations, keys.rotation_progress, keys.destructions, keys.public_keys TO osmose_console;
GRANT SELECT (id, last_name, first_name, birth_date, sex, ins, search_name, search_ins, blind_key_id) ON care.patients TO osmose_console;
GRANT SELECT (id, reason, imaging_note, lab_note, activity_status) ON care.episodes TO osmose_console;
GRANT SELECT (id, body, checklist) ON care.transmissions TO osmose_console;
GRANT SELECT (id, snapshot) ON care.record_versions TO osmose_console;
GRANT EXECUTE ON FUNCTION keys.ciphertext_key(bytea) TO osmose_console;

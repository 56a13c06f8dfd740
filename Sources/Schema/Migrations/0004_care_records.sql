-- The minimal care record: teams and users, patients, care episodes (PEC),
-- transmissions, and a version for every change. Identity fields and free text
-- are AES-256-GCM ciphertexts (format in docs/encryption.md) whose associated
-- data binds table, column and row id. Exact-match search goes through HMAC blind
-- indexes; the table is never decrypted to search it. Nothing is ever deleted by
-- the care role: a change writes a new version, a transmission is retracted.

CREATE TABLE care.teams (
    id          uuid PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9-]{1,31}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE care.users (
    id               uuid PRIMARY KEY,
    username         text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    role             text NOT NULL CHECK (role IN ('agent', 'manager', 'admin')),
    team_id          uuid REFERENCES care.teams (id),
    password_hash    text NOT NULL,
    disabled         boolean NOT NULL DEFAULT false,
    failed_attempts  integer NOT NULL DEFAULT 0,
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((role = 'admin') OR (team_id IS NOT NULL))
);

CREATE TABLE care.sessions (
    token_hash    bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id       uuid NOT NULL REFERENCES care.users (id),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX sessions_user ON care.sessions (user_id);

CREATE TABLE care.patients (
    id             uuid PRIMARY KEY,
    version        integer NOT NULL CHECK (version > 0),
    last_name      bytea NOT NULL,
    first_name     bytea NOT NULL,
    birth_date     bytea NOT NULL,
    sex            bytea NOT NULL,
    ins            bytea,
    search_name    bytea NOT NULL,
    search_ins     bytea,
    blind_key_id   integer NOT NULL REFERENCES keys.data_keys (id),
    created_at     timestamptz NOT NULL,
    created_by     uuid NOT NULL REFERENCES care.users (id),
    updated_at     timestamptz NOT NULL,
    updated_by     uuid NOT NULL REFERENCES care.users (id)
);
CREATE INDEX patients_search_name ON care.patients (search_name);
CREATE UNIQUE INDEX patients_search_ins ON care.patients (search_ins) WHERE search_ins IS NOT NULL;

CREATE TABLE care.episodes (
    id                  uuid PRIMARY KEY,
    version             integer NOT NULL CHECK (version > 0),
    patient_id          uuid NOT NULL REFERENCES care.patients (id),
    team_id             uuid NOT NULL REFERENCES care.teams (id),
    arrival_at          timestamptz NOT NULL,
    arrival_mode        text NOT NULL,
    reason              bytea NOT NULL,
    location            text,
    box_number          text,
    worrying            boolean NOT NULL DEFAULT false,
    accompanied         boolean NOT NULL DEFAULT false,
    box_status          text NOT NULL,
    imaging_status      text NOT NULL,
    imaging_note        bytea,
    lab_status          text NOT NULL,
    lab_note            bytea,
    psychiatric_care    text,
    activity_status     bytea,
    status              text NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at           timestamptz,
    created_at          timestamptz NOT NULL,
    created_by          uuid NOT NULL REFERENCES care.users (id),
    updated_at          timestamptz NOT NULL,
    updated_by          uuid NOT NULL REFERENCES care.users (id),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX episodes_open_by_team ON care.episodes (team_id) WHERE status = 'open';
CREATE INDEX episodes_patient ON care.episodes (patient_id);

-- Teams an episode is shared with besides its own (a transmission addressed to a
-- team shares the episode with it).
CREATE TABLE care.episode_teams (
    episode_id  uuid NOT NULL REFERENCES care.episodes (id),
    team_id     uuid NOT NULL REFERENCES care.teams (id),
    shared_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (episode_id, team_id)
);

CREATE TABLE care.transmissions (
    id                  uuid PRIMARY KEY,
    version             integer NOT NULL CHECK (version > 0),
    episode_id          uuid NOT NULL REFERENCES care.episodes (id),
    author_id           uuid NOT NULL REFERENCES care.users (id),
    author_team_id      uuid NOT NULL REFERENCES care.teams (id),
    addressed_team_id   uuid REFERENCES care.teams (id),
    category            text NOT NULL,
    body                bytea NOT NULL,
    checklist           bytea,
    written_at          timestamptz NOT NULL,
    retracted_at        timestamptz,
    retracted_by        uuid REFERENCES care.users (id)
);
CREATE INDEX transmissions_episode ON care.transmissions (episode_id, written_at);

-- Every version of every record: who, when, which fields, and the full state after
-- the change (encrypted JSON), so that nothing is overwritten without a trace.
CREATE TABLE care.record_versions (
    id              uuid PRIMARY KEY,
    record_type     text NOT NULL CHECK (record_type IN ('patient', 'episode', 'transmission')),
    record_id       uuid NOT NULL,
    version         integer NOT NULL CHECK (version > 0),
    changed_at      timestamptz NOT NULL,
    changed_by      uuid NOT NULL REFERENCES care.users (id),
    changed_fields  text[] NOT NULL,
    snapshot        bytea NOT NULL,
    UNIQUE (record_type, record_id, version)
);

REVOKE ALL ON ALL TABLES IN SCHEMA care FROM PUBLIC;
GRANT SELECT ON care.teams TO osmose_care;
GRANT SELECT, UPDATE (failed_attempts, locked_until) ON care.users TO osmose_care;
GRANT SELECT, INSERT, UPDATE (last_seen_at, revoked_at) ON care.sessions TO osmose_care;
GRANT SELECT, INSERT, UPDATE ON care.patients, care.episodes, care.transmissions TO osmose_care;
GRANT SELECT, INSERT ON care.episode_teams, care.record_versions TO osmose_care;
GRANT SELECT ON care.teams, care.users, care.patients, care.episodes, care.episode_teams, care.transmissions, care.record_versions TO osmose_dsar;

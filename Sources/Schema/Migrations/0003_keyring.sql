-- Versioned data keys, each wrapped (AES-256-GCM) by the master key that the
-- daemons receive as a systemd credential. A ciphertext names the id of the key
-- that made it; ids are never reused. Lifecycle:
-- pending → primary → decrypt-only → retired → destroyed (wrapped key erased).

CREATE TABLE keys.data_keys (
    id                  integer PRIMARY KEY CHECK (id > 0),
    purpose             text NOT NULL CHECK (purpose IN ('column', 'blind-index', 'pseudonymisation')),
    state               text NOT NULL CHECK (state IN ('pending', 'primary', 'decrypt-only', 'retired', 'destroyed')),
    wrapped_key         bytea CHECK ((state = 'destroyed') = (wrapped_key IS NULL)),
    master_fingerprint  text NOT NULL CHECK (master_fingerprint ~ '^[0-9a-f]{16}$'),
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by          text NOT NULL,
    state_changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- At most one primary key per purpose: the one new data is encrypted with.
CREATE UNIQUE INDEX data_keys_one_primary ON keys.data_keys (purpose) WHERE state = 'primary';

REVOKE ALL ON keys.data_keys FROM PUBLIC;
GRANT SELECT ON keys.data_keys TO osmose_care, osmose_dsar, osmose_retention;
GRANT SELECT, INSERT, UPDATE ON keys.data_keys TO osmose_keyd;

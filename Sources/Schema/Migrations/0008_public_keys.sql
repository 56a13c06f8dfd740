-- Asymmetric keys whose private halves never enter the database (docs/keys.md):
--
-- * journal-signing: the Ed25519 keys that sign the journal's checkpoints. The
--   private half is a credential of osmose-journald only (it must not hold the
--   master key, which would let it decrypt care data); the keyring records the
--   verifier key and the lifecycle, and osmose-journald signs each checkpoint with
--   every key it holds that is pending, primary or decrypt-only (co-signing), the
--   primary first. A key is retired only from decrypt-only, so every checkpoint
--   carries the primary's signature.
-- * backup-recipient: the age X25519 recipients backups are encrypted to. The
--   identities stay offline with the sysadmins; the keyring records which
--   recipient each backup used, so that an identity is kept while a retained
--   backup needs it.
--
-- Same lifecycle as data keys: pending → primary → decrypt-only → retired → destroyed.

CREATE TABLE keys.public_keys (
    id                  integer PRIMARY KEY CHECK (id > 0),
    purpose             text NOT NULL CHECK (purpose IN ('journal-signing', 'backup-recipient')),
    -- journal-signing: the C2SP note verifier key; backup-recipient: the age1… recipient.
    public_key          text NOT NULL UNIQUE CHECK (public_key ~ '^[!-~]+$' AND length(public_key) <= 300),
    -- journal-signing: the note key id (8 hex digits); backup-recipient: the first
    -- 16 hex digits of SHA-256 of the recipient text.
    fingerprint         text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{8}([0-9a-f]{8})?$'),
    label               text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    state               text NOT NULL CHECK (state IN ('pending', 'primary', 'decrypt-only', 'retired', 'destroyed')),
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by          text NOT NULL,
    state_changed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    retired_at          timestamptz,
    destroyed_at        timestamptz,
    UNIQUE (purpose, fingerprint)
);

-- One primary and at most one pending journal signing key (one rollover at a
-- time). Backups may be encrypted to several primary recipients at once.
CREATE UNIQUE INDEX public_keys_one_signing_primary ON keys.public_keys (purpose) WHERE purpose = 'journal-signing' AND state = 'primary';
CREATE UNIQUE INDEX public_keys_one_signing_pending ON keys.public_keys (purpose) WHERE purpose = 'journal-signing' AND state = 'pending';

CREATE FUNCTION keys.check_public_transition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
    AS $$
    BEGIN
        IF NEW.id <> OLD.id OR NEW.purpose <> OLD.purpose OR NEW.public_key <> OLD.public_key OR NEW.fingerprint <> OLD.fingerprint THEN
            RAISE EXCEPTION 'keys.immutable: a public key''s id, purpose and key never change' USING ERRCODE = 'OSK02';
        END IF;
        IF NEW.state = OLD.state THEN
            RETURN NEW;
        END IF;
        IF (OLD.state, NEW.state) NOT IN (('pending', 'primary'), ('primary', 'decrypt-only'), ('decrypt-only', 'primary'),
            ('decrypt-only', 'retired'), ('retired', 'destroyed'), ('decrypt-only', 'destroyed'), ('pending', 'destroyed'))
        THEN
            RAISE EXCEPTION 'keys.transition: % key % cannot go from % to %', OLD.purpose, OLD.id, OLD.state, NEW.state USING ERRCODE = 'OSK02';
        END IF;
        NEW.state_changed_at := clock_timestamp();
        IF NEW.state = 'retired' THEN NEW.retired_at := NEW.state_changed_at; END IF;
        IF NEW.state = 'destroyed' THEN NEW.destroyed_at := NEW.state_changed_at; END IF;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER lifecycle BEFORE UPDATE ON keys.public_keys FOR EACH ROW EXECUTE FUNCTION keys.check_public_transition();

CREATE FUNCTION keys.refuse_public_key_delete() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
    AS $$
    BEGIN
        RAISE EXCEPTION 'keys.immutable: public keys are never deleted (past verifier keys must stay known)' USING ERRCODE = 'OSK02';
    END
    $$;

CREATE TRIGGER keep_forever BEFORE DELETE ON keys.public_keys FOR EACH ROW EXECUTE FUNCTION keys.refuse_public_key_delete();

-- Evidence of every destroyed public key: what it meant, who decided, why.
CREATE TABLE keys.public_key_destructions (
    key_id          integer PRIMARY KEY REFERENCES keys.public_keys (id),
    purpose         text NOT NULL,
    destroyed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    destroyed_by    text NOT NULL,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    forced          boolean NOT NULL,
    -- What the destruction means (for a backup recipient: the backups that became unreadable).
    consequence     jsonb NOT NULL
);

-- A journal that has never recorded a signing key (a fresh install, or one from
-- before this migration) adopts the key osmose-journald runs with as its first
-- primary. Does nothing, and returns false, once any signing key is recorded.
CREATE FUNCTION keys.adopt_signing_key(verifier_key text, key_id text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog
    AS $$
    BEGIN
        LOCK TABLE keys.public_keys IN SHARE ROW EXCLUSIVE MODE;
        IF EXISTS (SELECT 1 FROM keys.public_keys WHERE purpose = 'journal-signing') THEN
            RETURN false;
        END IF;
        IF verifier_key !~ '^[!-*,-~]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$' OR split_part(verifier_key, '+', 2) <> key_id THEN
            RAISE EXCEPTION 'keys.malformed: % is not a C2SP note verifier key with id %', verifier_key, key_id USING ERRCODE = '22023';
        END IF;
        INSERT INTO keys.public_keys (id, purpose, public_key, fingerprint, label, state, created_by)
            VALUES (coalesce((SELECT max(id) FROM keys.public_keys), 0) + 1, 'journal-signing', verifier_key, key_id,
                'adopted by osmose-journald', 'primary', 'osmose-journald');
        RETURN true;
    END
    $$;

REVOKE ALL ON keys.public_keys, keys.public_key_destructions FROM PUBLIC;
REVOKE ALL ON FUNCTION keys.adopt_signing_key(text, text) FROM PUBLIC;
GRANT USAGE ON SCHEMA keys TO osmose_journald, osmose_auditor;
GRANT SELECT (id, purpose, public_key, fingerprint, state) ON keys.public_keys TO osmose_journald;
GRANT EXECUTE ON FUNCTION keys.adopt_signing_key(text, text) TO osmose_journald;
GRANT SELECT, INSERT, UPDATE ON keys.public_keys TO osmose_keyd;
GRANT SELECT, INSERT ON keys.public_key_destructions TO osmose_keyd;
GRANT SELECT ON keys.public_keys, keys.public_key_destructions TO osmose_backup, osmose_auditor, osmose_dsar, osmose_retention;
-- osmose-keyd promotes a pending signing key once the newest checkpoint carries its signature.
GRANT SELECT ON journal.checkpoints TO osmose_keyd;

-- Events about journal signing keys decide which checkpoint signatures
-- `osmosectl journal verify` accepts (a key's retirement). Only the key tools may
-- write them: osmose-keyd, osmose-journald for its own adoption, and the
-- administrators' osmosectl; never the care, DSAR, retention or backup roles.
CREATE FUNCTION journal.guard_signing_key_events() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
    AS $$
    BEGIN
        IF NEW.object_type = 'journal-signing-key' AND (
            current_user IN ('osmose_care', 'osmose_dsar', 'osmose_retention', 'osmose_backup', 'osmose_auditor')
            OR (current_user = 'osmose_journald' AND (NEW.source <> 'osmose-journald' OR NEW.reason NOT LIKE 'adopted %')))
        THEN
            RAISE EXCEPTION 'journal.reserved: events about journal signing keys are written only by the key tools (role %)', current_user
                USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER guard_signing_key_events BEFORE INSERT ON journal.intake FOR EACH ROW
    WHEN (NEW.object_type = 'journal-signing-key') EXECUTE FUNCTION journal.guard_signing_key_events();

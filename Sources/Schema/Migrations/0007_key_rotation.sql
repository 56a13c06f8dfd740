-- Key lifecycle, online rotation and destruction with evidence (docs/keys.md).
--
-- A data key goes pending → primary → decrypt-only → retired → destroyed. New
-- ciphertexts are written only under the primary key of their purpose: triggers on
-- every table holding ciphertexts refuse anything else (SQLSTATE OSK01), so that
-- once a key is demoted and the transactions older than the demotion have ended, a
-- scan that finds no ciphertext under it stays true, and retiring it is safe. A
-- service holding a stale keyring gets OSK01, reloads its keys and retries.

ALTER TABLE keys.data_keys
    ADD COLUMN rotate_after timestamptz,
    ADD COLUMN retired_at timestamptz,
    ADD COLUMN destroyed_at timestamptz;

-- Only the lifecycle's transitions; a destroyed key stays destroyed; id and
-- purpose never change. Rewrapping (another master key) keeps the state.
CREATE FUNCTION keys.check_transition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
    AS $$
    BEGIN
        IF NEW.id <> OLD.id OR NEW.purpose <> OLD.purpose THEN
            RAISE EXCEPTION 'keys.immutable: a data key''s id and purpose never change' USING ERRCODE = 'OSK02';
        END IF;
        IF NEW.state = OLD.state THEN
            RETURN NEW;
        END IF;
        IF (OLD.state, NEW.state) NOT IN (('pending', 'primary'), ('primary', 'decrypt-only'), ('decrypt-only', 'primary'),
            ('decrypt-only', 'retired'), ('retired', 'destroyed'), ('decrypt-only', 'destroyed'), ('pending', 'destroyed'))
        THEN
            RAISE EXCEPTION 'keys.transition: data key % cannot go from % to %', OLD.id, OLD.state, NEW.state USING ERRCODE = 'OSK02';
        END IF;
        NEW.state_changed_at := clock_timestamp();
        IF NEW.state = 'retired' THEN NEW.retired_at := NEW.state_changed_at; END IF;
        IF NEW.state = 'destroyed' THEN NEW.destroyed_at := NEW.state_changed_at; END IF;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER lifecycle BEFORE UPDATE ON keys.data_keys FOR EACH ROW EXECUTE FUNCTION keys.check_transition();

-- The key id of a column ciphertext (docs/encryption.md: version byte 0x01, then
-- the key id as a big-endian uint32), NULL for anything else. Not STRICT, so that
-- PostgreSQL inlines it (a STRICT SQL function whose body is not strict is run,
-- and parsed, at every call: that was most of a rotation's cost).
CREATE FUNCTION keys.ciphertext_key(value bytea) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE WHEN octet_length(value) >= 5 AND get_byte(value, 0) = 1
            THEN (get_byte(value, 1) << 24) | (get_byte(value, 2) << 16) | (get_byte(value, 3) << 8) | get_byte(value, 4) END
    $$;

-- Refuses any key in `key_ids` other than the primary one of `wanted_purpose`
-- (one lookup for all the ciphertexts a row write brings).
CREATE FUNCTION keys.require_primary_all(key_ids integer[], wanted_purpose text, what text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog
    AS $$
    DECLARE
        primary_id integer := (SELECT id FROM keys.data_keys WHERE purpose = wanted_purpose AND state = 'primary');
        stale integer;
    BEGIN
        SELECT k INTO stale FROM unnest(key_ids) AS k WHERE k IS DISTINCT FROM primary_id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'keys.stale_key: % is written under % key %, which is not the primary one', what, wanted_purpose, coalesce(stale::text, 'unknown')
                USING ERRCODE = 'OSK01', HINT = 'reload the keyring and retry';
        END IF;
    END
    $$;

-- One trigger function per table, with the encrypted columns spelled out, so that
-- PL/pgSQL compiles the column accesses once: a write gathers the key ids of the
-- ciphertexts it adds or changes and checks them with one lookup.
DO $$
DECLARE
    spec record;
    checks text;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('patients', ARRAY['last_name', 'first_name', 'birth_date', 'sex', 'ins']),
            ('episodes', ARRAY['reason', 'imaging_note', 'lab_note', 'activity_status']),
            ('transmissions', ARRAY['body', 'checklist']),
            ('record_versions', ARRAY['snapshot'])
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
            END IF;$f$, 'care.' || spec.table_name);
        IF spec.table_name = 'patients' THEN
            checks := checks || $f$
            IF TG_OP = 'INSERT' OR NEW.search_name IS DISTINCT FROM OLD.search_name OR NEW.search_ins IS DISTINCT FROM OLD.search_ins
                OR NEW.blind_key_id IS DISTINCT FROM OLD.blind_key_id THEN
                PERFORM keys.require_primary_all(ARRAY[NEW.blind_key_id], 'blind-index', 'care.patients search tokens');
            END IF;$f$;
        END IF;
        EXECUTE format(
            'CREATE FUNCTION keys.%I() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS %L',
            'primary_key_only_' || spec.table_name,
            'DECLARE used integer[] := ''{}''; BEGIN ' || checks || ' RETURN NEW; END');
        EXECUTE format(
            'CREATE TRIGGER primary_key_only BEFORE INSERT OR UPDATE ON care.%I FOR EACH ROW EXECUTE FUNCTION keys.%I()',
            spec.table_name, 'primary_key_only_' || spec.table_name);
    END LOOP;
END
$$;

-- A rotation: the values of `purpose` not under `to_key` are rewritten under it,
-- target by target (a table's column, or the patients' search tokens), in batches
-- that commit their progress with them, so that a crash resumes at the last batch.
CREATE TABLE keys.rotations (
    id              bigserial PRIMARY KEY,
    purpose         text NOT NULL CHECK (purpose IN ('column', 'blind-index')),
    to_key          integer NOT NULL REFERENCES keys.data_keys (id),
    from_keys       integer[] NOT NULL,
    state           text NOT NULL CHECK (state IN ('running', 'finished')),
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_by      text NOT NULL,
    finished_at     timestamptz,
    rewritten       bigint NOT NULL DEFAULT 0,
    CHECK ((state = 'finished') = (finished_at IS NOT NULL))
);
-- One running rotation per purpose.
CREATE UNIQUE INDEX rotations_one_running ON keys.rotations (purpose) WHERE state = 'running';

CREATE TABLE keys.rotation_progress (
    rotation_id     bigint NOT NULL REFERENCES keys.rotations (id),
    target          text NOT NULL,
    after_id        uuid,
    done            boolean NOT NULL DEFAULT false,
    rewritten       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (rotation_id, target)
);

-- Evidence of every destroyed key: what became unreadable, who decided, why.
CREATE TABLE keys.destructions (
    key_id          integer PRIMARY KEY REFERENCES keys.data_keys (id),
    purpose         text NOT NULL,
    destroyed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    destroyed_by    text NOT NULL,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    forced          boolean NOT NULL,
    -- Per table and column, how many values were under the key when it was destroyed.
    unreadable      jsonb NOT NULL
);

REVOKE ALL ON keys.rotations, keys.rotation_progress, keys.destructions FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON keys.rotations, keys.rotation_progress TO osmose_keyd;
GRANT USAGE ON SEQUENCE keys.rotations_id_seq TO osmose_keyd;
GRANT SELECT, INSERT ON keys.destructions TO osmose_keyd;
GRANT SELECT ON keys.rotations, keys.rotation_progress, keys.destructions TO osmose_dsar, osmose_retention;

-- Migration 0002 granted INSERT on journal.intake to osmose_keyd and osmose_backup
-- but not the use of the journal schema, so neither could journal anything.
GRANT USAGE ON SCHEMA journal TO osmose_keyd, osmose_backup;

-- osmose-keyd rewrites ciphertexts and search tokens in place, nothing else.
GRANT SELECT (id, last_name, first_name, birth_date, sex, ins, search_name, search_ins, blind_key_id),
    UPDATE (last_name, first_name, birth_date, sex, ins, search_name, search_ins, blind_key_id) ON care.patients TO osmose_keyd;
GRANT SELECT (id, reason, imaging_note, lab_note, activity_status), UPDATE (reason, imaging_note, lab_note, activity_status)
    ON care.episodes TO osmose_keyd;
GRANT SELECT (id, body, checklist), UPDATE (body, checklist) ON care.transmissions TO osmose_keyd;
GRANT SELECT (id, snapshot), UPDATE (snapshot) ON care.record_versions TO osmose_keyd;
GRANT EXECUTE ON FUNCTION keys.ciphertext_key(bytea), keys.require_primary_all(integer[], text, text) TO osmose_keyd, osmose_care;

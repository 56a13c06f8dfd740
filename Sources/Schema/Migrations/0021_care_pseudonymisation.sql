-- Care records past their legal term (docs/retention.md): pseudonymised, not
-- deleted, so that counts, durations and statuses stay usable for statistics.
--
-- * A patient gains an optional, encrypted date of death (a clock input of
--   R1112-7), set by a manager through the care service or by the DPO through
--   osmosectl; a change by the DPO, who is not a care user, is recorded in the
--   history under the operator's name (changed_by_operator).
-- * Pseudonymisation (osmose-retentiond, role osmose_retention): names and INS
--   are replaced by one keyed pseudonym per patient (HMAC-SHA-256 under the
--   pseudonymisation key, whose id is kept beside it), birth and death dates by
--   their years, free text and version snapshots erased, search tokens removed.
--   What each encrypted column becomes is declared in the registry of encrypted
--   columns (CareRecords' EncryptedColumns.swift).
-- * A pseudonymised row never regains an identifier or a text, and a
--   pseudonymised record takes no new episode, transmission or change: triggers
--   refuse them to every role, the care service included.

ALTER TABLE care.patients
    ADD COLUMN date_of_death bytea,
    ADD COLUMN pseudonym text CHECK (pseudonym ~ '^PSN-[A-Z2-7]{26}$'),
    ADD COLUMN pseudonym_key_id integer REFERENCES keys.data_keys (id),
    ADD COLUMN birth_year smallint CHECK (birth_year BETWEEN 1800 AND 2200),
    ADD COLUMN death_year smallint CHECK (death_year BETWEEN 1800 AND 2200),
    ADD COLUMN pseudonymised_at timestamptz,
    ALTER COLUMN last_name DROP NOT NULL,
    ALTER COLUMN first_name DROP NOT NULL,
    ALTER COLUMN birth_date DROP NOT NULL,
    ALTER COLUMN search_name DROP NOT NULL,
    ALTER COLUMN blind_key_id DROP NOT NULL,
    ALTER COLUMN updated_by DROP NOT NULL,
    ADD CONSTRAINT patients_identified_or_pseudonymised CHECK (
        (pseudonymised_at IS NULL AND last_name IS NOT NULL AND first_name IS NOT NULL AND birth_date IS NOT NULL
            AND search_name IS NOT NULL AND blind_key_id IS NOT NULL
            AND pseudonym IS NULL AND pseudonym_key_id IS NULL AND birth_year IS NULL AND death_year IS NULL)
        OR (pseudonymised_at IS NOT NULL AND last_name IS NULL AND first_name IS NULL AND birth_date IS NULL AND ins IS NULL
            AND date_of_death IS NULL AND search_name IS NULL AND search_ins IS NULL AND blind_key_id IS NULL
            AND pseudonym IS NOT NULL AND pseudonym_key_id IS NOT NULL AND birth_year IS NOT NULL));
CREATE INDEX patients_pseudonym ON care.patients (pseudonym) WHERE pseudonym IS NOT NULL;

ALTER TABLE care.episodes
    ADD COLUMN pseudonymised_at timestamptz,
    ALTER COLUMN reason DROP NOT NULL,
    ADD CONSTRAINT episodes_text_or_pseudonymised CHECK (
        (pseudonymised_at IS NULL AND reason IS NOT NULL)
        OR (pseudonymised_at IS NOT NULL AND reason IS NULL AND imaging_note IS NULL AND lab_note IS NULL AND activity_status IS NULL));

ALTER TABLE care.transmissions
    ADD COLUMN pseudonymised_at timestamptz,
    ALTER COLUMN body DROP NOT NULL,
    ADD CONSTRAINT transmissions_text_or_pseudonymised CHECK (
        (pseudonymised_at IS NULL AND body IS NOT NULL) OR (pseudonymised_at IS NOT NULL AND body IS NULL AND checklist IS NULL));

ALTER TABLE care.record_versions
    ADD COLUMN erased_at timestamptz,
    ADD COLUMN changed_by_operator text CHECK (length(changed_by_operator) BETWEEN 1 AND 300),
    ALTER COLUMN snapshot DROP NOT NULL,
    ALTER COLUMN changed_by DROP NOT NULL,
    ADD CONSTRAINT record_versions_snapshot_or_erased CHECK ((erased_at IS NULL) = (snapshot IS NOT NULL)),
    ADD CONSTRAINT record_versions_one_author CHECK ((changed_by IS NULL) <> (changed_by_operator IS NULL));

-- Migration 0007's guard of the patients' ciphertexts, regenerated with the date of
-- death, and without a blind-index key to check once the tokens are removed.
CREATE OR REPLACE FUNCTION keys.primary_key_only_patients() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    DECLARE
        used integer[] := '{}';
    BEGIN
        IF NEW.last_name IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.last_name IS DISTINCT FROM OLD.last_name) THEN
            used := used || keys.ciphertext_key(NEW.last_name);
        END IF;
        IF NEW.first_name IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.first_name IS DISTINCT FROM OLD.first_name) THEN
            used := used || keys.ciphertext_key(NEW.first_name);
        END IF;
        IF NEW.birth_date IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.birth_date IS DISTINCT FROM OLD.birth_date) THEN
            used := used || keys.ciphertext_key(NEW.birth_date);
        END IF;
        IF NEW.sex IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.sex IS DISTINCT FROM OLD.sex) THEN
            used := used || keys.ciphertext_key(NEW.sex);
        END IF;
        IF NEW.ins IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.ins IS DISTINCT FROM OLD.ins) THEN
            used := used || keys.ciphertext_key(NEW.ins);
        END IF;
        IF NEW.date_of_death IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.date_of_death IS DISTINCT FROM OLD.date_of_death) THEN
            used := used || keys.ciphertext_key(NEW.date_of_death);
        END IF;
        IF cardinality(used) > 0 THEN
            PERFORM keys.require_primary_all(used, 'column', 'care.patients');
        END IF;
        IF (TG_OP = 'INSERT' OR NEW.search_name IS DISTINCT FROM OLD.search_name OR NEW.search_ins IS DISTINCT FROM OLD.search_ins
            OR NEW.blind_key_id IS DISTINCT FROM OLD.blind_key_id)
            AND (NEW.blind_key_id IS NOT NULL OR NEW.search_name IS NOT NULL OR NEW.search_ins IS NOT NULL)
        THEN
            PERFORM keys.require_primary_all(ARRAY[NEW.blind_key_id], 'blind-index', 'care.patients search tokens');
        END IF;
        RETURN NEW;
    END
    $$;

-- A pseudonymised row keeps what pseudonymisation left, whoever asks. A
-- patient's kept structured value (sex) may still be re-encrypted by a key
-- rotation; nothing else of a pseudonymised record changes.
CREATE FUNCTION care.keep_pseudonymised() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    BEGIN
        IF TG_TABLE_NAME = 'patients' THEN
            IF OLD.pseudonymised_at IS NOT NULL AND (
                (NEW.id, NEW.version, NEW.last_name, NEW.first_name, NEW.birth_date, NEW.ins, NEW.date_of_death, NEW.search_name, NEW.search_ins,
                 NEW.blind_key_id, NEW.pseudonym, NEW.pseudonym_key_id, NEW.birth_year, NEW.death_year, NEW.pseudonymised_at, NEW.updated_at, NEW.updated_by)
                IS DISTINCT FROM
                (OLD.id, OLD.version, OLD.last_name, OLD.first_name, OLD.birth_date, OLD.ins, OLD.date_of_death, OLD.search_name, OLD.search_ins,
                 OLD.blind_key_id, OLD.pseudonym, OLD.pseudonym_key_id, OLD.birth_year, OLD.death_year, OLD.pseudonymised_at, OLD.updated_at, OLD.updated_by))
            THEN
                RAISE EXCEPTION 'care.pseudonymised: patient % is pseudonymised and cannot change', OLD.id USING ERRCODE = 'OSC01';
            END IF;
        ELSIF TG_TABLE_NAME = 'record_versions' THEN
            IF OLD.erased_at IS NOT NULL AND NEW IS DISTINCT FROM OLD THEN
                RAISE EXCEPTION 'care.pseudonymised: an erased version cannot change' USING ERRCODE = 'OSC01';
            END IF;
        ELSIF OLD.pseudonymised_at IS NOT NULL AND NEW IS DISTINCT FROM OLD THEN
            RAISE EXCEPTION 'care.pseudonymised: % % is pseudonymised and cannot change', TG_TABLE_NAME, OLD.id USING ERRCODE = 'OSC01';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.patients FOR EACH ROW EXECUTE FUNCTION care.keep_pseudonymised();
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.episodes FOR EACH ROW EXECUTE FUNCTION care.keep_pseudonymised();
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.transmissions FOR EACH ROW EXECUTE FUNCTION care.keep_pseudonymised();
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.record_versions FOR EACH ROW EXECUTE FUNCTION care.keep_pseudonymised();

-- No new episode for a pseudonymised patient, no new transmission on a pseudonymised episode.
CREATE FUNCTION care.refuse_under_pseudonymised() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    BEGIN
        -- Nested: a condition naming a column the other table lacks fails even when false.
        IF TG_TABLE_NAME = 'episodes' THEN
            IF EXISTS (SELECT 1 FROM care.patients WHERE id = NEW.patient_id AND pseudonymised_at IS NOT NULL) THEN
                RAISE EXCEPTION 'care.pseudonymised: patient % is pseudonymised and takes no new episode', NEW.patient_id USING ERRCODE = 'OSC01';
            END IF;
        ELSIF EXISTS (SELECT 1 FROM care.episodes WHERE id = NEW.episode_id AND pseudonymised_at IS NOT NULL) THEN
            RAISE EXCEPTION 'care.pseudonymised: episode % is pseudonymised and takes no new transmission', NEW.episode_id USING ERRCODE = 'OSC01';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER refuse_under_pseudonymised BEFORE INSERT ON care.episodes FOR EACH ROW EXECUTE FUNCTION care.refuse_under_pseudonymised();
CREATE TRIGGER refuse_under_pseudonymised BEFORE INSERT ON care.transmissions FOR EACH ROW EXECUTE FUNCTION care.refuse_under_pseudonymised();

CREATE INDEX transmissions_episode_id ON care.transmissions (episode_id);
CREATE INDEX record_versions_record ON care.record_versions (record_id);

-- osmose-keyd rotates the date of death like every other encrypted column.
GRANT SELECT (date_of_death), UPDATE (date_of_death) ON care.patients TO osmose_keyd;

-- osmose-retentiond reads what the clocks need and what pseudonymisation removes,
-- rewrites only the columns pseudonymisation changes, and removes ended sessions.
GRANT SELECT ON care.patients, care.episodes, care.transmissions, care.record_versions, care.episode_teams, care.sessions TO osmose_retention;
GRANT UPDATE (last_name, first_name, birth_date, ins, date_of_death, search_name, search_ins, blind_key_id, pseudonym, pseudonym_key_id,
    birth_year, death_year, pseudonymised_at) ON care.patients TO osmose_retention;
GRANT UPDATE (reason, imaging_note, lab_note, activity_status, pseudonymised_at) ON care.episodes TO osmose_retention;
GRANT UPDATE (body, checklist, pseudonymised_at) ON care.transmissions TO osmose_retention;
GRANT UPDATE (snapshot, erased_at) ON care.record_versions TO osmose_retention;
GRANT DELETE ON care.sessions TO osmose_retention;

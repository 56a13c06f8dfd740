-- Retention of the register of data-subject requests (docs/retention.md,
-- docs/subject-requests.md): a closed request past `subject_requests.years_after_closure`
-- is disposed of by an approved retention plan (osmose-retentiond or `osmosectl
-- retention apply`, as osmose_retention), through SubjectRequests' RequestDisposal.
--
-- What goes: every value that says who asked and what was said or sent — the
-- requester's name and contact, the identity check (who checked, when, what was
-- seen), the link to the patient or staff account, notes, answers and extension
-- notices, documents, redactions, the access pack and its record, rectifications and
-- their recipients, and the pack jobs' outputs. What stays, so that an auditor can
-- see the request existed and was disposed of lawfully: its number, kind, the
-- requester's capacity, dates received, opened and closed, outcome, deadlines, the
-- evidence chain's structure (its steps without their bodies, below: the links and
-- the hashes the signed journal carries still check), and the disposal itself:
-- when, under which plan, the plan's SHA-256 and the approval (who, when).

ALTER TABLE dsar.requests
    ADD COLUMN disposed_at             timestamptz,
    ADD COLUMN disposal_plan_id        bigint REFERENCES ops.retention_plans (id),
    ADD COLUMN disposal_plan_sha256    text CHECK (disposal_plan_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN disposal_approved_by    text CHECK (length(disposal_approved_by) BETWEEN 1 AND 200),
    ADD COLUMN disposal_approved_at    timestamptz;

ALTER TABLE dsar.requests ALTER COLUMN requester_name DROP NOT NULL;

-- The subject's link goes with the content: the checks tying subject_type to
-- patient_id / staff_user_id hold only for requests not disposed of.
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'dsar.requests'::regclass AND contype = 'c'
          AND (pg_get_constraintdef(oid) LIKE '%patient_id IS NOT NULL%' OR pg_get_constraintdef(oid) LIKE '%staff_user_id IS NOT NULL%')
    LOOP
        EXECUTE format('ALTER TABLE dsar.requests DROP CONSTRAINT %I', name);
    END LOOP;
END
$$;
ALTER TABLE dsar.requests
    ADD CONSTRAINT requests_patient_subject CHECK (disposed_at IS NOT NULL OR (subject_type = 'patient') = (patient_id IS NOT NULL)),
    ADD CONSTRAINT requests_staff_subject CHECK (disposed_at IS NOT NULL OR (subject_type = 'staff') = (staff_user_id IS NOT NULL)),
    ADD CONSTRAINT requests_named CHECK (disposed_at IS NOT NULL OR requester_name IS NOT NULL),
    ADD CONSTRAINT requests_disposal CHECK (
        (disposed_at IS NULL) = (disposal_plan_id IS NULL) AND (disposed_at IS NULL) = (disposal_plan_sha256 IS NULL)
        AND (disposed_at IS NULL) = (disposal_approved_by IS NULL) AND (disposed_at IS NULL) = (disposal_approved_at IS NULL)),
    ADD CONSTRAINT requests_disposed_empty CHECK (
        disposed_at IS NULL OR (status = 'closed' AND patient_id IS NULL AND staff_user_id IS NULL AND requester_name IS NULL
            AND requester_contact IS NULL AND identity_check IS NULL AND identity_checked_at IS NULL));

-- A disposed request stays disposed: nothing but its disposal may be written to it.
CREATE FUNCTION dsar.keep_disposed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.disposed_at IS NOT NULL THEN
        RAISE EXCEPTION 'dsar.requests: request % was disposed of at %; it cannot change', OLD.number, OLD.disposed_at
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER keep_disposed BEFORE UPDATE OR DELETE ON dsar.requests FOR EACH ROW EXECUTE FUNCTION dsar.keep_disposed();

-- osmose-retentiond: exactly what the disposal reads and touches.
GRANT USAGE ON SCHEMA dsar TO osmose_retention;
GRANT SELECT (id, number, kind, status, patient_id, closed_at, disposed_at, requester_name, requester_contact, identity_check)
    ON dsar.requests TO osmose_retention;
GRANT UPDATE (patient_id, staff_user_id, requester_name, requester_contact, identity_check, identity_checked_at, identity_checked_by,
    disposed_at, disposal_plan_id, disposal_plan_sha256, disposal_approved_by, disposal_approved_at)
    ON dsar.requests TO osmose_retention;
GRANT SELECT (id, request_id, body), DELETE ON dsar.notes TO osmose_retention;
GRANT SELECT (id, request_id, file_name, content), DELETE ON dsar.documents TO osmose_retention;
GRANT SELECT (id, request_id, removed_text), DELETE ON dsar.redactions TO osmose_retention;
GRANT SELECT (id, request_id, content, content_sha256, sealed_sha256, sealed_to), DELETE ON dsar.packs TO osmose_retention;
GRANT SELECT (id, request_id, recipients, fields), DELETE ON dsar.rectifications TO osmose_retention;
GRANT SELECT (id, operation, state, output, result), DELETE ON dsar.jobs TO osmose_retention;

-- The evidence chain of a disposed request keeps its structure and loses its
-- bodies. A step's body is canonical JSON whose details hold unsalted SHA-256
-- digests of the requester's name, the identity documents, notes, file names and
-- redacted text: short, guessable values, so a digest kept for years would let
-- anyone holding a candidate name confirm it. At disposal every body of the
-- request becomes NULL; position, time, actor, kind, previous hash, hash and the
-- journal event's id stay, so the chain's links still check (each step's previous
-- hash is the hash before it, from the request's seed) and each hash is still the
-- one the signed journal recorded; only the recomputation of a hash from its body
-- is no longer possible. Nothing else of a step may ever change, and no step may
-- be deleted.
ALTER TABLE dsar.steps ALTER COLUMN body DROP NOT NULL;
DROP TRIGGER steps_append_only ON dsar.steps;
DROP TRIGGER steps_no_change ON dsar.steps;
CREATE TRIGGER steps_no_delete BEFORE DELETE ON dsar.steps FOR EACH ROW EXECUTE FUNCTION dsar.refuse_change();
CREATE TRIGGER steps_no_delete_or_truncate BEFORE DELETE OR TRUNCATE ON dsar.steps FOR EACH STATEMENT EXECUTE FUNCTION dsar.refuse_change();
CREATE FUNCTION dsar.steps_erase_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.body IS NULL AND OLD.body IS NOT NULL
        AND (NEW.request_id, NEW.position, NEW.occurred_at, NEW.actor, NEW.kind, NEW.previous_hash, NEW.hash, NEW.journal_request_id)
            IS NOT DISTINCT FROM (OLD.request_id, OLD.position, OLD.occurred_at, OLD.actor, OLD.kind, OLD.previous_hash, OLD.hash, OLD.journal_request_id)
        AND EXISTS (SELECT 1 FROM dsar.requests r WHERE r.id = OLD.request_id AND r.disposed_at IS NOT NULL)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'dsar.steps: UPDATE refused, the evidence file is append-only (only a disposed request''s step bodies are erased)'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER steps_erase_only BEFORE UPDATE ON dsar.steps FOR EACH ROW EXECUTE FUNCTION dsar.steps_erase_only();
GRANT SELECT (request_id, position, body), UPDATE (body) ON dsar.steps TO osmose_retention;

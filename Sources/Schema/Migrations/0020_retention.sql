-- Retention (docs/retention.md): legal holds, plans the DPO approves, runs that
-- apply them item by item, and the disposition certificates kept after the data
-- is gone. Owned by the Retention capability; osmose-retentiond works as the
-- osmose_retention role, the DPO through osmosectl (the schema owner's connection).
--
-- Nothing here is ever deleted. A plan is never changed after it is stored: its
-- SHA-256 is checked by the database when it is approved and when a run starts,
-- so a plan edited behind the database's back (triggers disabled) is refused.

-- A legal hold suspends archiving, purge, pseudonymisation and destruction of what
-- it names (a patient, an episode, or a period of the journal) until released.
CREATE TABLE ops.legal_holds (
    id              bigserial PRIMARY KEY,
    scope           text NOT NULL CHECK (scope IN ('patient', 'episode', 'journal-period')),
    patient_id      uuid REFERENCES care.patients (id),
    episode_id      uuid REFERENCES care.episodes (id),
    period_from     date,
    period_through  date,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 10 AND 500),
    reference       text NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    placed_by       text NOT NULL CHECK (length(placed_by) BETWEEN 1 AND 300),
    placed_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    released_by     text CHECK (length(released_by) BETWEEN 1 AND 300),
    released_at     timestamptz,
    release_reason  text CHECK (length(release_reason) BETWEEN 10 AND 500),
    CHECK ((scope = 'patient') = (patient_id IS NOT NULL)),
    CHECK ((scope = 'episode') = (episode_id IS NOT NULL)),
    CHECK ((scope = 'journal-period') = (period_from IS NOT NULL AND period_through IS NOT NULL)),
    CHECK (scope = 'journal-period' OR (period_from IS NULL AND period_through IS NULL)),
    CHECK (period_through >= period_from),
    CHECK ((released_at IS NULL) = (released_by IS NULL) AND (released_at IS NULL) = (release_reason IS NULL))
);
CREATE INDEX legal_holds_in_force ON ops.legal_holds (scope) WHERE released_at IS NULL;

-- A hold is placed once and released once; nothing else about it changes.
CREATE FUNCTION ops.guard_legal_hold() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'retention.hold: legal holds are never deleted (release them)' USING ERRCODE = 'OSR01';
        END IF;
        IF OLD.released_at IS NOT NULL THEN
            RAISE EXCEPTION 'retention.hold: hold % was released at %; it cannot change', OLD.id, OLD.released_at USING ERRCODE = 'OSR01';
        END IF;
        IF (NEW.id, NEW.scope, NEW.patient_id, NEW.episode_id, NEW.period_from, NEW.period_through, NEW.reason, NEW.reference, NEW.placed_by, NEW.placed_at)
            IS DISTINCT FROM (OLD.id, OLD.scope, OLD.patient_id, OLD.episode_id, OLD.period_from, OLD.period_through, OLD.reason, OLD.reference, OLD.placed_by, OLD.placed_at)
        THEN
            RAISE EXCEPTION 'retention.hold: only the release of hold % may be recorded', OLD.id USING ERRCODE = 'OSR01';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER guard BEFORE UPDATE OR DELETE ON ops.legal_holds FOR EACH ROW EXECUTE FUNCTION ops.guard_legal_hold();

-- Plans: exactly what would be archived, purged, pseudonymised or destroyed as of
-- a day, item by item, as canonical JSON and its SHA-256. A 'reviewed' plan is
-- for the DPO to approve; a 'preview' (a day after its computation) is not
-- approvable; an 'automatic' plan holds only what the policy lets
-- osmose-retentiond do without approval (archive-then-purge of journal months).
CREATE TABLE ops.retention_plans (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('reviewed', 'preview', 'automatic')),
    as_of           date NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    computed_by     text NOT NULL CHECK (length(computed_by) BETWEEN 1 AND 300),
    policy_sha256   text NOT NULL CHECK (policy_sha256 ~ '^[0-9a-f]{64}$'),
    item_count      integer NOT NULL CHECK (item_count >= 0),
    document        text NOT NULL,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CHECK (encode(sha256(convert_to(document, 'UTF8')), 'hex') = sha256)
);

-- The DPO's approval of one plan's digest, with name and time.
CREATE TABLE ops.retention_approvals (
    plan_id         bigint PRIMARY KEY REFERENCES ops.retention_plans (id),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    approver_name   text NOT NULL CHECK (length(approver_name) BETWEEN 3 AND 200),
    approved_by     text NOT NULL CHECK (length(approved_by) BETWEEN 1 AND 300),
    approved_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One run per plan: started, then resumed after any crash, until finished.
CREATE TABLE ops.retention_runs (
    id              bigserial PRIMARY KEY,
    plan_id         bigint NOT NULL UNIQUE REFERENCES ops.retention_plans (id),
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_by      text NOT NULL CHECK (length(started_by) BETWEEN 1 AND 300),
    state           text NOT NULL CHECK (state IN ('running', 'finished')),
    finished_at     timestamptz,
    CHECK ((state = 'finished') = (finished_at IS NOT NULL))
);

-- What a run did with each item of its plan, committed with the change itself.
CREATE TABLE ops.retention_run_items (
    run_id          bigint NOT NULL REFERENCES ops.retention_runs (id),
    item_key        text NOT NULL CHECK (length(item_key) BETWEEN 1 AND 200),
    outcome         text NOT NULL CHECK (outcome IN ('done', 'skipped')),
    detail          text NOT NULL CHECK (length(detail) <= 500),
    values_removed  bigint NOT NULL CHECK (values_removed >= 0),
    removed_sha256  text CHECK (removed_sha256 ~ '^[0-9a-f]{64}$'),
    done_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, item_key)
);

-- The disposition certificate of a finished run: what was done under which rule,
-- counts, digests of what was removed and of the archives written, the approval.
-- Itself recorded in the access journal (its SHA-256 in the event).
CREATE TABLE ops.retention_certificates (
    run_id          bigint PRIMARY KEY REFERENCES ops.retention_runs (id),
    plan_id         bigint NOT NULL REFERENCES ops.retention_plans (id),
    issued_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    document        text NOT NULL,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CHECK (encode(sha256(convert_to(document, 'UTF8')), 'hex') = sha256)
);

-- Plans, approvals, items and certificates are written once. Runs only finish.
CREATE FUNCTION ops.refuse_retention_change() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    BEGIN
        RAISE EXCEPTION 'retention.immutable: ops.% cannot be changed (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'OSR01';
    END
    $$;
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON ops.retention_plans FOR EACH ROW EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON ops.retention_approvals FOR EACH ROW EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON ops.retention_run_items FOR EACH ROW EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON ops.retention_certificates FOR EACH ROW EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ops.retention_plans FOR EACH STATEMENT EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ops.retention_approvals FOR EACH STATEMENT EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ops.retention_run_items FOR EACH STATEMENT EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ops.retention_certificates FOR EACH STATEMENT EXECUTE FUNCTION ops.refuse_retention_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ops.legal_holds FOR EACH STATEMENT EXECUTE FUNCTION ops.refuse_retention_change();

CREATE FUNCTION ops.guard_retention_run() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    BEGIN
        IF TG_OP = 'DELETE' OR OLD.state = 'finished' OR NEW.state <> 'finished'
            OR (NEW.id, NEW.plan_id, NEW.started_at, NEW.started_by) IS DISTINCT FROM (OLD.id, OLD.plan_id, OLD.started_at, OLD.started_by)
        THEN
            RAISE EXCEPTION 'retention.immutable: a run only goes from running to finished' USING ERRCODE = 'OSR01';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER guard BEFORE UPDATE OR DELETE ON ops.retention_runs FOR EACH ROW EXECUTE FUNCTION ops.guard_retention_run();

-- An approval names the digest of a reviewed plan whose document still hashes to it.
CREATE FUNCTION ops.check_retention_approval() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    DECLARE
        plan ops.retention_plans%ROWTYPE;
    BEGIN
        SELECT * INTO plan FROM ops.retention_plans WHERE id = NEW.plan_id;
        IF plan.kind <> 'reviewed' THEN
            RAISE EXCEPTION 'retention.refused: plan % is % and cannot be approved', plan.id, plan.kind USING ERRCODE = 'OSR02';
        END IF;
        IF NEW.sha256 <> plan.sha256 THEN
            RAISE EXCEPTION 'retention.digest_mismatch: the digest approved is not plan %''s', plan.id USING ERRCODE = 'OSR02';
        END IF;
        IF encode(sha256(convert_to(plan.document, 'UTF8')), 'hex') <> plan.sha256 THEN
            RAISE EXCEPTION 'retention.plan_modified: plan % no longer hashes to its digest', plan.id USING ERRCODE = 'OSR02';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER checked BEFORE INSERT ON ops.retention_approvals FOR EACH ROW EXECUTE FUNCTION ops.check_retention_approval();

-- A run starts only for a plan that is approved with its digest (or automatic),
-- and whose document still hashes to it.
CREATE FUNCTION ops.check_retention_run() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
    DECLARE
        plan ops.retention_plans%ROWTYPE;
    BEGIN
        SELECT * INTO plan FROM ops.retention_plans WHERE id = NEW.plan_id;
        IF encode(sha256(convert_to(plan.document, 'UTF8')), 'hex') <> plan.sha256 THEN
            RAISE EXCEPTION 'retention.plan_modified: plan % no longer hashes to its digest', plan.id USING ERRCODE = 'OSR02';
        END IF;
        IF plan.kind = 'preview' OR (plan.kind = 'reviewed'
            AND NOT EXISTS (SELECT 1 FROM ops.retention_approvals a WHERE a.plan_id = plan.id AND a.sha256 = plan.sha256))
        THEN
            RAISE EXCEPTION 'retention.refused: plan % is not approved', plan.id USING ERRCODE = 'OSR02';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER checked BEFORE INSERT ON ops.retention_runs FOR EACH ROW EXECUTE FUNCTION ops.check_retention_run();

REVOKE ALL ON ops.legal_holds, ops.retention_plans, ops.retention_approvals, ops.retention_runs, ops.retention_run_items,
    ops.retention_certificates FROM PUBLIC;
-- osmose-retentiond reads holds, plans and approvals; records its own automatic
-- plans, its runs, their items and certificates. It can neither approve a plan nor
-- place or release a hold.
GRANT SELECT ON ops.legal_holds, ops.retention_approvals TO osmose_retention;
GRANT SELECT, INSERT ON ops.retention_plans, ops.retention_runs, ops.retention_run_items, ops.retention_certificates TO osmose_retention;
GRANT UPDATE (state, finished_at) ON ops.retention_runs TO osmose_retention;
GRANT USAGE ON SEQUENCE ops.retention_plans_id_seq, ops.retention_runs_id_seq TO osmose_retention;
-- The security officer and the subject-request service read the record of what was done.
GRANT SELECT ON ops.legal_holds, ops.retention_plans, ops.retention_approvals, ops.retention_runs, ops.retention_run_items,
    ops.retention_certificates TO osmose_auditor, osmose_dsar;
GRANT USAGE ON SCHEMA ops TO osmose_dsar;

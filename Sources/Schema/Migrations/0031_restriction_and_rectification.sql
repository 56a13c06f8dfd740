-- What subject requests change in the care records (docs/dpo-runbook.md).
--
-- Restriction of processing (GDPR art. 18): a flag on the patient, set and lifted
-- by the DPO (osmose_dsar). While it is set, osmose-care hides the patient from
-- lists and searches, opens the record only with a ground of art. 18(2) named in
-- the request (each such override recorded here and reported to the DPO), and
-- refuses exports.
CREATE TABLE care.patient_restrictions (
    id                  uuid PRIMARY KEY,
    patient_id          uuid NOT NULL REFERENCES care.patients (id),
    subject_request_id  uuid NOT NULL REFERENCES dsar.requests (id),
    restricted_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    restricted_by       text NOT NULL CHECK (length(restricted_by) BETWEEN 1 AND 200),
    lifted_at           timestamptz,
    lifted_by           text CHECK (length(lifted_by) BETWEEN 1 AND 200),
    lift_reason         text CHECK (lift_reason IN ('accuracy-verified', 'objection-assessed', 'data-subject-consent', 'request-withdrawn', 'legal-claims-ended')),
    CHECK ((lifted_at IS NULL) = (lifted_by IS NULL) AND (lifted_at IS NULL) = (lift_reason IS NULL))
);
-- At most one restriction in force per patient.
CREATE UNIQUE INDEX patient_restrictions_in_force ON care.patient_restrictions (patient_id) WHERE lifted_at IS NULL;

CREATE TABLE care.restriction_overrides (
    id              uuid PRIMARY KEY,
    restriction_id  uuid NOT NULL REFERENCES care.patient_restrictions (id),
    patient_id      uuid NOT NULL REFERENCES care.patients (id),
    care_request_id text NOT NULL CHECK (length(care_request_id) BETWEEN 1 AND 128),
    user_id         uuid NOT NULL REFERENCES care.users (id),
    ground          text NOT NULL CHECK (ground IN ('consent', 'legal-claims', 'protection-of-others', 'public-interest')),
    endpoint        text NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 100),
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    reported_at     timestamptz
);
CREATE INDEX restriction_overrides_unreported ON care.restriction_overrides (occurred_at) WHERE reported_at IS NULL;

GRANT SELECT ON care.patient_restrictions TO osmose_care;
GRANT INSERT ON care.restriction_overrides TO osmose_care;
GRANT SELECT, INSERT, UPDATE (lifted_at, lifted_by, lift_reason) ON care.patient_restrictions TO osmose_dsar;
GRANT SELECT, UPDATE (reported_at) ON care.restriction_overrides TO osmose_dsar;

-- Rectification (GDPR art. 16) goes through the care records as a new version
-- that carries the request's id: made by the DPO, not by a care user, so the
-- version names the request instead of a user, and the patient's updated_by is
-- empty until a care user changes it again.
ALTER TABLE care.record_versions ADD COLUMN subject_request_id uuid REFERENCES dsar.requests (id);
ALTER TABLE care.record_versions ALTER COLUMN changed_by DROP NOT NULL;
ALTER TABLE care.record_versions ADD CONSTRAINT record_versions_author CHECK (changed_by IS NOT NULL OR subject_request_id IS NOT NULL);
ALTER TABLE care.patients ALTER COLUMN updated_by DROP NOT NULL;
GRANT UPDATE (version, last_name, first_name, birth_date, sex, ins, search_name, search_ins, blind_key_id, updated_at, updated_by)
    ON care.patients TO osmose_dsar;
GRANT INSERT ON care.record_versions TO osmose_dsar;

-- Erasure of a departed staff member's personal data outside the health record
-- (docs/dpo-runbook.md): the display name and password hash are overwritten, the
-- account disabled and its sessions ended; the login name stays, the access
-- journal (kept under a legal duty) names it.
GRANT UPDATE (display_name, password_hash, disabled) ON care.users TO osmose_dsar;
GRANT SELECT ON care.sessions TO osmose_dsar;
GRANT UPDATE (revoked_at) ON care.sessions TO osmose_dsar;

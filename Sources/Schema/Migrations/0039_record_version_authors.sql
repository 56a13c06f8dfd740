-- A version of a care record has exactly one author: a care user (changed_by), an
-- operator of osmosectl or osmose-retentiond acting under the retention policy
-- (changed_by_operator, migration 0021), or a subject request the DPO answered by a
-- rectification (subject_request_id, migration 0031). Migrations 0021 and 0031 each
-- added a constraint that knew only its own kind of author, and together they
-- refused a rectification (no user, no operator): one constraint over the three
-- replaces both.
ALTER TABLE care.record_versions
    DROP CONSTRAINT record_versions_one_author,
    DROP CONSTRAINT record_versions_author,
    ADD CONSTRAINT record_versions_one_author CHECK (num_nonnulls(changed_by, changed_by_operator, subject_request_id) = 1);

-- Searches by patient and by user: BRIN Bloom indexes instead of the hash indexes
-- of migration 0006. A hash index costs every appended journal entry a bucket
-- insertion on a random page, with its WAL: 29 % of PostgreSQL's time while
-- osmose-journald appends (perf, 2026-11-29). A BRIN Bloom index keeps one small
-- Bloom filter (1 % false positives) per 16 heap pages, summarised once the range
-- is full (autosummarize): an append costs next to nothing, and a search reads only
-- the ranges whose filter may hold the value, plus the few not yet summarised at
-- the end. PostgreSQL re-checks every row it reads, so a search stays exact.
-- 256 distinct values per range covers every row of a 16-page range.
DROP INDEX journal.entries_patient;
DROP INDEX journal.entries_actor;
CREATE INDEX entries_patient ON journal.entries
    USING brin (patient_id uuid_bloom_ops (n_distinct_per_range = 256, false_positive_rate = 0.01))
    WITH (pages_per_range = 16, autosummarize = on);
CREATE INDEX entries_actor ON journal.entries
    USING brin (actor_user_id uuid_bloom_ops (n_distinct_per_range = 256, false_positive_rate = 0.01))
    WITH (pages_per_range = 16, autosummarize = on);

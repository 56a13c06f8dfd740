-- Searches by patient and by user are equality lookups; B-trees on random UUIDs
-- cost every appended journal entry two random leaf insertions (and their page
-- splits and WAL). Hash indexes serve the same lookups with one bucket insertion
-- each: on 500,000 entries with 500 users and 50,000 patients, 5.4 s against
-- 9–11 s for the two B-trees (docs/benchmarks.md). A search's hits (one
-- patient's or one user's entries) are few enough to sort by seq after the lookup.
DROP INDEX journal.entries_patient;
DROP INDEX journal.entries_actor;
CREATE INDEX entries_patient ON journal.entries USING hash (patient_id);
CREATE INDEX entries_actor ON journal.entries USING hash (actor_user_id);

-- Searches by patient: a hash index instead of the BRIN Bloom index of migration
-- 0013. A Bloom filter per 16 heap pages made an append nearly free, but a search
-- reads every range whose filter may hold the patient: on a journal of 1,000,000
-- entries, ~730 heap pages and ~18,000 rows re-checked for a patient's ~40 entries
-- (45 ms, two parallel workers); at 20,000,000 entries and ~400 entries a patient,
-- ~6,400 pages, too slow for the security officer's search and the subject-access
-- pack under load (bench console, 2026-12-05: 10 searches/s on 2 cores at 1M). A
-- hash index leads straight to the patient's rows. What it costs osmose-journald,
-- measured by hand on 2,000,000 events (2 cores, quiet): 104,000–111,000 events/s
-- against 113,000–116,000 with the Bloom index (a B-tree on (patient_id, seq) cost
-- more: 86,000–87,000). Migration 0013 had measured hash indexes at 29 % of
-- PostgreSQL's time while appending: two of them (patient and user), when the
-- sequencer itself was four times slower; the user search keeps its Bloom index.
-- Searches by period keep the BRIN index on occurred_at.
--
-- The new index is built before the old one is dropped: the build blocks appends
-- (the intake holds the events meanwhile, nothing is lost) but not searches,
-- verification or pack builds; only the drop and the rename take the table's
-- exclusive lock, for a moment.
CREATE INDEX entries_patient_hash ON journal.entries USING hash (patient_id);
DROP INDEX journal.entries_patient;
ALTER INDEX journal.entries_patient_hash RENAME TO entries_patient;

-- Nothing acknowledged is lost (docs/store.md): which journal files may still hold records not in
-- the store, and which journal each call writes through, so the sweeper never deletes a chat
-- whose words are still on their way; `deleted`, how a call ends when its chat is deleted under
-- it; and the purge an erasure asks for, done by the sweeper once for any number of erasures.
-- Expand only: code of schema 2 runs on it.
-- oldest code: 2

-- One row per writer's journal file, from the writer's first commit until its last record (or,
-- for a dead writer, the last record another writer replayed from its file) is in the store.
CREATE TABLE journals (
    id        TEXT PRIMARY KEY,
    host      TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL
);

-- A purge owed since `since` (docs/operations.md, erasure): at most one row.
CREATE TABLE purge_due (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    since DOUBLE PRECISION NOT NULL
);

ALTER TABLE calls ADD COLUMN journal TEXT;
CREATE INDEX calls_journal ON calls (journal) WHERE journal IS NOT NULL;
ALTER TABLE calls DROP CONSTRAINT calls_end_reason_check;
ALTER TABLE calls ADD CONSTRAINT calls_end_reason_check CHECK (end_reason IN
    ('new_chat', 'switched', 'hangup', 'shutdown', 'lost', 'taken_over', 'deleted'));

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
    opened_at REAL NOT NULL
);

-- A purge owed since `since` (docs/operations.md, erasure): at most one row.
CREATE TABLE purge_due (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    since REAL NOT NULL
);

-- SQLite changes a CHECK only by building the table again.
CREATE TABLE calls_new (
    id           TEXT PRIMARY KEY,
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    room         TEXT,
    job_id       TEXT,
    participant  TEXT,
    started_at   REAL NOT NULL,
    heartbeat_at REAL,
    ended_at     REAL,
    end_reason   TEXT CHECK (end_reason IN
                 ('new_chat', 'switched', 'hangup', 'shutdown', 'lost', 'taken_over', 'deleted')),
    journal      TEXT
);
INSERT INTO calls_new (id, chat_id, room, job_id, participant, started_at, heartbeat_at,
                       ended_at, end_reason)
SELECT id, chat_id, room, job_id, participant, started_at, heartbeat_at, ended_at, end_reason
FROM calls;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
CREATE INDEX calls_chat ON calls (chat_id);
CREATE INDEX calls_live ON calls (chat_id) WHERE ended_at IS NULL;
CREATE INDEX calls_journal ON calls (journal) WHERE journal IS NOT NULL;

-- call.ended, as 0004 made it (its table was built again).
CREATE TRIGGER webhook_call_ended AFTER UPDATE OF ended_at ON calls
WHEN old.ended_at IS NULL AND new.ended_at IS NOT NULL
BEGIN
    INSERT INTO webhook_outbox (id, type, data, created_at, next_at)
    SELECT 'evt_' || lower(hex(randomblob(16))), 'call.ended',
           json_object('call_id', new.id, 'chat_id', new.chat_id, 'owner', c.owner,
                       'room', new.room, 'job_id', new.job_id,
                       'participant', new.participant, 'end_reason', new.end_reason,
                       'started_at', new.started_at, 'ended_at', new.ended_at),
           (julianday('now') - 2440587.5) * 86400.0, 0
    FROM chats c WHERE c.id = new.chat_id;
END;

-- Schema version 1 (docs/store.md). Timestamps are UTC Unix seconds; JSON columns hold JSON text.

CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
);

CREATE TABLE chats (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    agent_name  TEXT,
    title       TEXT,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'closed', 'interrupted')),
    end_reason  TEXT CHECK (end_reason IN ('new_chat', 'switched', 'hangup', 'shutdown', 'lost')),
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    ended_at    REAL,
    summary     TEXT,
    summary_seq INTEGER,
    metadata    TEXT NOT NULL DEFAULT '{"v": 1}' CHECK (json_valid(metadata))
);
-- (owner, updated_at DESC) as docs/store.md asks, with id last so keyset pages have a total order.
CREATE INDEX chats_owner_updated ON chats (owner, updated_at DESC, id DESC);
CREATE INDEX chats_updated ON chats (updated_at DESC, id DESC);

CREATE TABLE calls (
    id           TEXT PRIMARY KEY,
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    room         TEXT,
    job_id       TEXT,
    participant  TEXT,
    started_at   REAL NOT NULL,
    heartbeat_at REAL,
    ended_at     REAL,
    end_reason   TEXT CHECK (end_reason IN
                 ('new_chat', 'switched', 'hangup', 'shutdown', 'lost', 'taken_over'))
);
CREATE INDEX calls_chat ON calls (chat_id);

CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    chat_id     TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    call_id     TEXT,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    role        TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content     TEXT,
    tool_name   TEXT,
    tool_call   TEXT CHECK (tool_call IS NULL OR json_valid(tool_call)),
    tool_result TEXT CHECK (tool_result IS NULL OR json_valid(tool_result)),
    interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
    confidence  REAL,
    started_at  REAL,
    ended_at    REAL,
    created_at  REAL NOT NULL,
    prosody     TEXT CHECK (prosody IS NULL OR json_valid(prosody)),
    item        TEXT CHECK (item IS NULL OR json_valid(item)),
    metadata    TEXT NOT NULL DEFAULT '{"v": 1}' CHECK (json_valid(metadata)),
    UNIQUE (chat_id, seq)
);

-- Full-text search over messages.content, kept in step by triggers so every writer keeps it right.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.content IS NOT NULL BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.content IS NOT NULL BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.rowid, old.content WHERE old.content IS NOT NULL;
    INSERT INTO messages_fts (rowid, content)
        SELECT new.rowid, new.content WHERE new.content IS NOT NULL;
END;

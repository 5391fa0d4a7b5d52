-- Schema version 1 (docs/store.md), PostgreSQL. Timestamps are UTC Unix seconds; JSON is jsonb.

CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE chats (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    agent_name  TEXT,
    title       TEXT,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'closed', 'interrupted')),
    end_reason  TEXT CHECK (end_reason IN ('new_chat', 'switched', 'hangup', 'shutdown', 'lost')),
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    ended_at    DOUBLE PRECISION,
    summary     TEXT,
    summary_seq INTEGER,
    metadata    JSONB NOT NULL DEFAULT '{"v": 1}'
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
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION,
    ended_at     DOUBLE PRECISION,
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
    tool_call   JSONB,
    tool_result JSONB,
    interrupted BOOLEAN NOT NULL DEFAULT FALSE,
    confidence  DOUBLE PRECISION,
    started_at  DOUBLE PRECISION,
    ended_at    DOUBLE PRECISION,
    created_at  DOUBLE PRECISION NOT NULL,
    prosody     JSONB,
    item        JSONB,
    metadata    JSONB NOT NULL DEFAULT '{"v": 1}',
    -- Full-text search, kept in step by the database itself on every insert and update.
    search      TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', COALESCE(content, ''))) STORED,
    UNIQUE (chat_id, seq)
);
CREATE INDEX messages_search ON messages USING GIN (search);

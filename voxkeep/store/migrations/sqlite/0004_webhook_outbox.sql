-- Webhooks (docs/webhooks.md): every event is written to this outbox by triggers, in the same
-- transaction as the change it tells of, and delivered from there by the worker. Events carry ids,
-- counts and reasons, never what anyone said. Expand only: code of schema 2 runs on it.
-- oldest code: 2

CREATE TABLE webhook_outbox (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL CHECK (json_valid(data)),
    created_at REAL NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    REAL NOT NULL,
    acked      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(acked))
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at, seq);

-- chat.started: the chat's first user message (a chat nobody spoke in is never kept).
CREATE TRIGGER webhook_chat_started AFTER INSERT ON messages
WHEN new.role = 'user'
 AND new.seq = (SELECT MIN(seq) FROM messages WHERE chat_id = new.chat_id AND role = 'user')
BEGIN
    INSERT INTO webhook_outbox (id, type, data, created_at, next_at)
    SELECT 'evt_' || lower(hex(randomblob(16))), 'chat.started',
           json_object('chat_id', c.id, 'owner', c.owner, 'agent_name', c.agent_name,
                       'created_at', c.created_at),
           (julianday('now') - 2440587.5) * 86400.0, 0
    FROM chats c WHERE c.id = new.chat_id;
END;

-- chat.ended: an active chat closed or interrupted.
CREATE TRIGGER webhook_chat_ended AFTER UPDATE OF status ON chats
WHEN old.status = 'active' AND new.status != 'active'
BEGIN
    INSERT INTO webhook_outbox (id, type, data, created_at, next_at)
    VALUES ('evt_' || lower(hex(randomblob(16))), 'chat.ended',
            json_object('chat_id', new.id, 'owner', new.owner, 'status', new.status,
                        'end_reason', new.end_reason, 'ended_at', new.ended_at,
                        'message_count',
                        (SELECT COUNT(*) FROM messages WHERE chat_id = new.id)),
            (julianday('now') - 2440587.5) * 86400.0, 0);
END;

-- chat.deleted: a kept chat deleted (by its owner, an operator, retention or erasure).
CREATE TRIGGER webhook_chat_deleted BEFORE DELETE ON chats
WHEN EXISTS (SELECT 1 FROM messages WHERE chat_id = old.id AND role = 'user')
BEGIN
    INSERT INTO webhook_outbox (id, type, data, created_at, next_at)
    VALUES ('evt_' || lower(hex(randomblob(16))), 'chat.deleted',
            json_object('chat_id', old.id, 'owner', old.owner,
                        'message_count',
                        (SELECT COUNT(*) FROM messages WHERE chat_id = old.id)),
            (julianday('now') - 2440587.5) * 86400.0, 0);
END;

-- call.ended: a call's row ended, however it ended.
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

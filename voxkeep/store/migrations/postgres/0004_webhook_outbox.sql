-- Webhooks (docs/webhooks.md): every event is written to this outbox by triggers, in the same
-- transaction as the change it tells of, and delivered from there by the workers. Events carry
-- ids, counts and reasons, never what anyone said. Expand only: code of schema 2 runs on it.
-- oldest code: 2

CREATE TABLE webhook_outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    data       JSONB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    DOUBLE PRECISION NOT NULL,
    acked      JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at, seq);

CREATE FUNCTION webhook_event(kind TEXT, payload JSONB) RETURNS VOID LANGUAGE sql AS $$
    INSERT INTO webhook_outbox (id, type, data, created_at, next_at)
    VALUES ('evt_' || replace(gen_random_uuid()::text, '-', ''), kind, payload,
            extract(epoch FROM clock_timestamp()), 0);
$$;

-- chat.started: the chat's first user message (a chat nobody spoke in is never kept).
CREATE FUNCTION webhook_chat_started() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF new.seq = (SELECT MIN(seq) FROM messages WHERE chat_id = new.chat_id AND role = 'user')
    THEN
        PERFORM webhook_event('chat.started', jsonb_build_object(
            'chat_id', c.id, 'owner', c.owner, 'agent_name', c.agent_name,
            'created_at', c.created_at))
        FROM chats c WHERE c.id = new.chat_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_chat_started AFTER INSERT ON messages
    FOR EACH ROW WHEN (new.role = 'user') EXECUTE FUNCTION webhook_chat_started();

-- chat.ended: an active chat closed or interrupted.
CREATE FUNCTION webhook_chat_ended() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_event('chat.ended', jsonb_build_object(
        'chat_id', new.id, 'owner', new.owner, 'status', new.status,
        'end_reason', new.end_reason, 'ended_at', new.ended_at,
        'message_count', (SELECT COUNT(*) FROM messages WHERE chat_id = new.id)));
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_chat_ended AFTER UPDATE OF status ON chats
    FOR EACH ROW WHEN (old.status = 'active' AND new.status != 'active')
    EXECUTE FUNCTION webhook_chat_ended();

-- chat.deleted: a kept chat deleted (by its owner, an operator, retention or erasure).
CREATE FUNCTION webhook_chat_deleted() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM messages WHERE chat_id = old.id AND role = 'user') THEN
        PERFORM webhook_event('chat.deleted', jsonb_build_object(
            'chat_id', old.id, 'owner', old.owner,
            'message_count', (SELECT COUNT(*) FROM messages WHERE chat_id = old.id)));
    END IF;
    RETURN old;
END $$;
CREATE TRIGGER webhook_chat_deleted BEFORE DELETE ON chats
    FOR EACH ROW EXECUTE FUNCTION webhook_chat_deleted();

-- call.ended: a call's row ended, however it ended.
CREATE FUNCTION webhook_call_ended() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_event('call.ended', jsonb_build_object(
        'call_id', new.id, 'chat_id', new.chat_id, 'owner', c.owner, 'room', new.room,
        'job_id', new.job_id, 'participant', new.participant, 'end_reason', new.end_reason,
        'started_at', new.started_at, 'ended_at', new.ended_at))
    FROM chats c WHERE c.id = new.chat_id;
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_call_ended AFTER UPDATE OF ended_at ON calls
    FOR EACH ROW WHEN (old.ended_at IS NULL AND new.ended_at IS NOT NULL)
    EXECUTE FUNCTION webhook_call_ended();

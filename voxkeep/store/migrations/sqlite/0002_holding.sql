-- Resume and the sweeper (docs/resume.md): find a call's live rows and the active chats quickly.

-- The calls still holding a chat (a chat has at most one; ended rows are history).
CREATE INDEX calls_live ON calls (chat_id) WHERE ended_at IS NULL;
-- The sweeper's scan: active chats, oldest update first.
CREATE INDEX chats_active ON chats (updated_at) WHERE status = 'active';

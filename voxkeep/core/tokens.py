"""The caller's token (docs/livekit.md): what `voxkeepctl token` and the web app's server mint
for a caller's app, with the grants and the dispatch a call needs."""

from __future__ import annotations

import datetime

from livekit import api


def caller_token(
    key: str, secret: str, *, identity: str, room: str, ttl_s: float,
    attributes: dict[str, str] | None = None, agent_name: str | None = None,
    agent_metadata: str = "",
) -> api.AccessToken:  # fmt: skip
    """A caller's token: it joins `room`, may change its own attributes (the caller's app
    switches prosody off with `voxkeep.prosody=off`, docs/prosody.md), and with `agent_name`
    dispatches that agent into the room as it joins (a worker with an agent name is sent only
    where it is asked for: docs/livekit.md)."""
    grants = api.VideoGrants(room_join=True, room=room, can_update_own_metadata=True)
    minted = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=ttl_s))
    )
    if attributes:
        minted = minted.with_attributes(attributes)
    if agent_name:
        dispatch = api.RoomAgentDispatch(agent_name=agent_name, metadata=agent_metadata)
        minted = minted.with_room_config(api.RoomConfiguration(agents=[dispatch]))
    return minted

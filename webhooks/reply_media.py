"""The voice notes we send, served to the provider that fetches them (Twilio's
`MediaUrl`) at a signed link that expires (`db.media_links`). A link that is not ours or
is past its time gets 403, an unknown or deleted file 404; neither says why."""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import Response

from db.media import DatabaseContentStore, reply_audio
from db.media_links import link_is_valid

_store = DatabaseContentStore()


async def reply_media(request: Request) -> Response:
    settings = request.app.state.settings
    secret = settings.media_link_secret
    try:
        media_id = uuid.UUID(request.path_params["media_id"])
    except ValueError:
        return Response(status_code=404)
    query = request.query_params
    if secret is None or not link_is_valid(
        media_id,
        query.get("expires"),
        query.get("signature"),
        secret=secret.get_secret_value(),
        now=time.time(),
    ):
        return Response(status_code=403)
    async with request.app.state.sessionmaker() as db:
        found = await reply_audio(media_id, store=_store, db=db)
    if found is None:
        return Response(status_code=404)
    content, content_type = found
    return Response(content, media_type=content_type, headers={"Cache-Control": "no-store"})

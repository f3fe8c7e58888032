"""`search_documents`: the tool that lets a builder's agent answer from its documents."""

from __future__ import annotations

import logging

from agents import RunContextWrapper, function_tool

from db.document_store import search_documents as search
from worker.agent.run_context import TurnContext

logger = logging.getLogger(__name__)

PASSAGES = 4

KNOWLEDGE_STYLE = (
    "For questions about the business (products, prices, opening hours, policies), call "
    "search_documents first and answer from what it returns. If it finds nothing that "
    "answers the question, say that you do not know rather than guessing."
)


@function_tool
async def search_documents(context: RunContextWrapper[TurnContext], query: str) -> str:
    """Search the business's own documents (menus, price lists, FAQs, policies).

    Args:
        query: A few key words of the question, e.g. "opening hours sunday".
    """
    turn = context.context
    if turn.sessions is None:
        return "Document search is not available right now."
    async with turn.sessions() as db:
        passages = await search(turn.builder_id, query, limit=PASSAGES, db=db)
    logger.debug("session %s: search_documents found %d passage(s)", turn.session_id, len(passages))
    if not passages:
        return f"No passage of the business's documents matches {query!r}."
    return "\n\n".join(f"[source: {passage.source}]\n{passage.text}" for passage in passages)

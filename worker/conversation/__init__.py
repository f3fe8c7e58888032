"""Answering a conversation: take it, run its turns, record and send the replies.

Every caller (the worker's task, the web chat, the dashboard's operator actions) goes
through the same few functions, each written once:

- `lease`: one holder at a time (`take_lease`, `conversation_lease`, `ConversationBusy`);
- `agent_run.run_agent`: the builder's agent on a session, plain or streamed;
- `replies.send_reply`: a reply recorded once and sent part by part;
- `inbound.process_inbound` (the worker), `web_chat`, `human_reply`, `memory`: the
  callers, built from the three above.
"""

"""notes-bot: a note-taking chat bot run by agent-factory workers."""

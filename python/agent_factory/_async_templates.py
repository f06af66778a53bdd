"""The asyncio API of ``factory.templates``; ``_sync_templates.py`` is generated from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._area import _Area, _str_dict, _str_list
from ._identity_types import MessageTemplate, TemplateSend
from ._record_list import RecordList

_IS_ASYNC = True

__all__ = ["AsyncTemplatesApi"]


class AsyncTemplatesApi(_Area):
    """Reusable message templates: ``factory.templates``.

    Templates are global. Each has a ``template_key`` derived from its title
    (lower-case, runs of other characters become ``-``; ``message-template`` when
    nothing is left) and made unique with ``-2``, ``-3``, ...; tags are trimmed,
    lower-cased, de-duplicated and sorted. Listings rank by usage, then by last
    update, over all templates.
    """

    __slots__ = ()

    async def create(
        self,
        title: str,
        text: str,
        tags: Iterable[str] = (),
        *,
        actor_user_id: str,
        enabled: bool = True,
        now_ms: int | None = None,
    ) -> MessageTemplate:
        """Create a template. Title and text are trimmed and required
        (``ValidationError("Template title is required")`` /
        ``"Template text is required"``)."""
        raw = await self._n.create_message_template(
            _IS_ASYNC, title, text, _str_list(tags, "tags"), actor_user_id, enabled, now_ms
        )
        return MessageTemplate._from(raw)

    async def update(
        self,
        template_id: str,
        *,
        actor_user_id: str,
        title: str | None = None,
        text: str | None = None,
        tags: Iterable[str] | None = None,
        enabled: bool | None = None,
        now_ms: int | None = None,
    ) -> MessageTemplate | None:
        """Change the given fields; returns the template, or ``None`` if it does not
        exist. The key is regenerated only when the title changes."""
        new_tags = None if tags is None else _str_list(tags, "tags")
        raw = await self._n.update_message_template(
            _IS_ASYNC, template_id, actor_user_id, title, text, new_tags, enabled, now_ms
        )
        return MessageTemplate._maybe(raw)

    async def delete(self, template_id: str) -> bool:
        """Delete a template; ``False`` if it did not exist."""
        return await self._n.delete_message_template(_IS_ASYNC, template_id)  # type: ignore[no-any-return]

    async def get(self, template_id: str) -> MessageTemplate | None:
        """One template, or ``None``."""
        return MessageTemplate._maybe(await self._n.get_message_template(_IS_ASYNC, template_id))

    async def list(self, *, include_disabled: bool = False, limit: int = 100) -> RecordList[MessageTemplate]:
        """Templates, most used first, then most recently updated; enabled ones only
        unless ``include_disabled``. ``limit`` is 1..200."""
        raw = await self._n.list_message_templates(_IS_ASYNC, include_disabled, limit)
        return RecordList([MessageTemplate._from(t) for t in raw], MessageTemplate)

    async def send_to_user_agent(
        self,
        consumer_user_id: str,
        agent_key: str,
        template_id: str,
        *,
        metadata: Mapping[str, str] | None = None,
        now_ms: int | None = None,
    ) -> TemplateSend:
        """Send an enabled template's text to the user's agent and count the use, in
        one transaction. ``NotFoundError("Message template not found")`` for a missing
        or disabled template; the user needs an active binding for ``agent_key``.
        Metadata gets ``source: "message_template"``, ``templateId`` and ``templateKey``."""
        raw = await self._n.send_message_template_to_user_agent(
            _IS_ASYNC, consumer_user_id, agent_key, template_id, _str_dict(metadata, "metadata"), now_ms
        )
        return TemplateSend._from(raw)

"""Messaging: templates, channels, recipients, in-app notifications and
webhooks, and the three automation actions that use them (``send``,
``notify``, ``webhook``).

The automations engine calls :class:`Messenger` (``Runtime.messaging``)
through the actions in :data:`ACTIONS`; the rest is wired as an internal
plugin (crmkit.messaging.plugin): the tables, the built-in channels
(``crmkit_channels``), the API under /api/v1/messages and
/api/v1/notifications, and the bell of the screens.
"""

from __future__ import annotations

from .actions import ACTIONS, NotifyAction, SendAction, WebhookAction
from .channels import Channel, Delivery, Outgoing
from .messenger import DeliveryFailed, Messenger, RefusedDelivery, Report
from .settings import MessagingSettings
from .templates import Recipient

__all__ = ["ACTIONS", "Channel", "Delivery", "DeliveryFailed", "Messenger", "MessagingSettings", "NotifyAction",
           "Outgoing", "Recipient", "RefusedDelivery", "Report", "SendAction", "WebhookAction"]

"""Nurture's HTTP service: SendGrid's Event Webhook and the unsubscribe pages (more to come)."""

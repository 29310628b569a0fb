"""One Pulumi component resource per tier of the platform."""

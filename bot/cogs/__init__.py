"""The bot's commands: `/avatar` and its `/avatar-*` siblings (avatar.py), the `/avatars` group
(avatars.py) and the `/moe-admin` group (admin.py)."""

"""The bot's command groups: `/avatar` (avatar.py) and `/moe-admin` (admin.py)."""

"""The bot's fixtures (a fake Telegram and the app polling it) for the privacy tests too."""

from tests.bot.conftest import bot_env, tg

__all__ = ["bot_env", "tg"]

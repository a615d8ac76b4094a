"""The bot's fixtures (a fake Telegram and the app polling it) and the nudges' office on a test
clock, for the privacy tests too."""

from tests.bot.conftest import bot_env, tg
from tests.nudges.conftest import office

__all__ = ["bot_env", "office", "tg"]

"""The bot's aiogram routers, one per module; :func:`bot.runner.build_dispatcher` includes them in order."""

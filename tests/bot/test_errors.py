"""Storage's error codes as people read them: a sentence in their language for every code."""

from __future__ import annotations

from typing import get_args

import pytest

from bot.callbacks import CardCB, MergeCB
from bot.i18n import load_i18n, speaking
from bot.routers.errors import sentence
from bot.routers.numbers import plan_error, plan_usage
from storage.errors import (
    AccessDecided,
    AlreadyOneContact,
    AlreadyRegistered,
    AverageDealNotPositive,
    BadDisposition,
    BadTemperature,
    Code,
    ContactGone,
    ContactMerged,
    DomainError,
    FieldRequired,
    MergeGone,
    MergeUndone,
    NoAccessRequest,
    NoCampaign,
    NoContact,
    NoLead,
    NoTarget,
    NotEditable,
    NoTouch,
    OwnNumber,
    PlanError,
    RateOutOfRange,
    ReasonRequired,
    ReminderGone,
    SnoozeTooShort,
    StageNotAllowed,
    StageReasonRequired,
    TooFewClients,
    TooLittleHistory,
    TwoTargets,
    UnknownDecision,
    WonAmountRequired,
)
from storage.plan import FunnelHistory
from storage.registrations import REASONS
from tests.bot.conftest import ANNA, BotEnv
from tests.bot.test_registration import post_form

HISTORY = FunnelHistory("2026-09-02..2026-11-30", contacts=40, leads=5, qualified=2, won=1, revenue=0)

#: One error of each code and what an English and a Russian reader see.
WORDED: list[tuple[DomainError, str, str]] = [
    (NoContact(7), "Record #7 no longer exists.", "Записи №7 больше нет."),
    (NoLead(8), "Record #8 no longer exists.", "Записи №8 больше нет."),
    (NoTouch(9), "Record #9 no longer exists.", "Записи №9 больше нет."),
    (
        BadDisposition("maybe"),
        "Register the contact as a lead or as not a lead.",
        "Зарегистрируйте контакт как лид или как «не лид».",
    ),
    (
        BadTemperature("boiling"),
        "A lead needs a temperature: hot, warm or cold.",
        "У лида должна быть температура: горячий, тёплый или холодный.",
    ),
    (ReasonRequired(REASONS), "Choose why this is not a lead.", "Выберите, почему это не лид."),
    (
        FieldRequired(("need", "Бюджет")),
        "A lead needs: Need, Бюджет.",
        "Для лида нужно заполнить: Потребность, Бюджет.",
    ),
    (NotEditable("stage"), "“stage” cannot be changed here.", "«stage» здесь изменить нельзя."),
    (
        StageNotAllowed("won", "new", ()),
        "A lead at stage “won” cannot become “new”; it can become: nothing (the lead is closed).",
        "Лид на этапе «выигран» нельзя перевести в «новый»; можно в: никуда (лид закрыт).",
    ),
    (
        StageNotAllowed("qualified", "won", ("accepted", "lost", "returned")),
        "A lead at stage “qualified” cannot become “won”; it can become: accepted by sales, lost,"
        " returned by sales.",
        "Лид на этапе «квалифицирован» нельзя перевести в «выигран»; можно в: принят продажами, проигран,"
        " возвращён продажами.",
    ),
    (StageReasonRequired("lost"), "Say why the lead is lost.", "Укажите причину: лид — проигран."),
    (WonAmountRequired(), "A won lead needs the deal amount.", "Для выигранного лида нужна сумма сделки."),
    (AlreadyRegistered(7), "This contact is already registered.", "Этот контакт уже зарегистрирован."),
    (ContactMerged(7, 3), "This contact was merged into #3.", "Этот контакт объединён с №3."),
    (
        OwnNumber(),
        "That is one of our own tracking numbers: give the contact's own phone or email.",
        "Это наш собственный номер отслеживания: укажите телефон или почту самого контакта.",
    ),
    (
        NoCampaign("brnd_msk", ("brand_msk", "vk_ads")),
        "There is no campaign “brnd_msk”. The campaigns are: brand_msk, vk_ads.",
        "Кампании «brnd_msk» нет. Есть кампании: brand_msk, vk_ads.",
    ),
    (
        NoCampaign("brand_msk", ()),
        "There is no campaign “brand_msk”, and none is set up yet: add campaigns to the config.",
        "Кампании «brand_msk» нет, и ни одной кампании пока не настроено: добавьте их в конфигурацию.",
    ),
    (
        UnknownDecision("admin"),
        "This button is from an old version of the message; open the list again.",
        "Эта кнопка из старой версии сообщения; откройте список заново.",
    ),
    (NoAccessRequest(4), "This request no longer exists.", "Этого запроса больше нет."),
    (AccessDecided("manager", "Anna"), "Already answered: manager (Anna).", "Уже решено: менеджер (Anna)."),
    (AlreadyOneContact(), "These are already one contact.", "Это уже один контакт."),
    (ContactGone(), "One of the contacts no longer exists.", "Одного из контактов больше нет."),
    (MergeGone(5), "This merge no longer exists.", "Этого объединения больше нет."),
    (MergeUndone(5), "This merge was already undone.", "Это объединение уже отменено."),
    (ReminderGone(6), "This reminder no longer exists.", "Этого напоминания больше нет."),
    (SnoozeTooShort(0), "Snooze by a day or more.", "Отложить можно на день или больше."),
    (
        RateOutOfRange("lead_to_qualified", 1.5),
        "The rate lead-to-qualified from the last 90 days is above 100 %: give it, e.g. lead-to-qualified=50%.",
        "Конверсия lead-to-qualified за последние 90 дней выше 100 %: укажите её сами,"
        " например lead-to-qualified=50%.",
    ),
    (
        TooLittleHistory(5, 2, 1, needed_leads=20, label=HISTORY.label),
        "There is too little history to take the rates from: 2026-09-02..2026-11-30 has 5 leads and 1 won"
        " (at least 20 leads and 1 client are needed). Give the rates: /plan clients=2"
        " lead-to-qualified=20% qualified-to-won=10%.",
        "Слишком мало истории, чтобы взять из неё конверсии: за 2026-09-02..2026-11-30 лидов 5, выиграно 1"
        " (нужно хотя бы 20 лидов и 1 клиент). Укажите конверсии: /plan clients=2"
        " lead-to-qualified=20% qualified-to-won=10%.",
    ),
    (
        AverageDealNotPositive(0.0),
        "The won deals of the last 90 days have no amounts: give the average deal, e.g. /plan 300000 100000.",
        "У сделок, выигранных за последние 90 дней, нет сумм: укажите средний чек, например /plan 300000 100000.",
    ),
    (NoTarget(), "Say what to plan for.\n{usage}", "Укажите, под какую цель составить план.\n{usage}"),
    (
        TwoTargets(),
        "Clients and revenue are two targets: keep one (a revenue target plans the clients it takes at the"
        " average deal).\n{usage}",
        "Клиенты и выручка — две разные цели: оставьте одну (по выручке план сам считает клиентов по среднему"
        " чеку).\n{usage}",
    ),
    (
        TooFewClients(0),
        "The number of clients must be at least 1.\n{usage}",
        "Клиентов должно быть хотя бы 1.\n{usage}",
    ),
]


def test_every_code_has_an_example() -> None:
    assert sorted({error.code for error, _en, _ru in WORDED}) == sorted(get_args(Code))


@pytest.mark.parametrize(("error", "english", "russian"), WORDED, ids=lambda v: getattr(v, "code", ""))
def test_each_code_reads_as_a_sentence_in_the_readers_language(
    error: DomainError, english: str, russian: str
) -> None:
    for locale, expected in (("en", english), ("ru", russian)):
        with speaking(load_i18n("en"), locale):
            said = plan_error(error, HISTORY) if isinstance(error, PlanError) else sentence(error)
            assert said == expected.format(usage=plan_usage())


async def test_a_stale_merge_question_is_answered_in_russian(bot_env: BotEnv) -> None:
    srv = await bot_env.start()
    await post_form(srv, name="Petr", phone="+7 916 555-00-01")
    await post_form(srv, name="Petr S.", email="petr@example.com")
    first, second = srv.rows("SELECT id FROM contacts ORDER BY id")
    found = await bot_env.says(ANNA, "/find +79165550001")
    merge = MergeCB(act="do", a=first["id"], b=second["id"]).pack()
    questions = []
    for _ in range(2):  # asked twice: two questions with a Merge button each
        await bot_env.press(ANNA, found.result["message_id"], MergeCB(act="ask", a=first["id"]).pack())
        questions.append(await bot_env.says(ANNA, "petr@example.com"))
    await bot_env.press(ANNA, questions[0].result["message_id"], merge)
    answer = await bot_env.press(ANNA, questions[1].result["message_id"], merge)
    assert (answer["text"], answer["show_alert"]) == ("Это уже один контакт.", True)
    assert srv.scalar("SELECT COUNT(*) FROM merges") == 1


async def test_a_button_no_version_drew_is_refused_in_the_readers_language(bot_env: BotEnv) -> None:
    tg = bot_env.tg
    await bot_env.start()
    menu = await bot_env.says(ANNA, "/help")
    # "remind me in 0 days": the bot draws +1 day and +1 week only
    update = tg.user_presses_button(ANNA, menu.result["message_id"], "n:later:1:0", strict=False)
    await tg.wait_until_confirmed(update)
    [answer] = tg.callback_answers.values()
    assert (answer["text"], answer["show_alert"]) == ("Отложить можно на день или больше.", True)


async def test_a_failure_of_telegrams_own_does_not_say_that_nothing_was_saved(bot_env: BotEnv) -> None:
    """Telegram can fail a call after the press's write committed (here the draft of the form is kept
    in the database before the card is redrawn): the answer claims nothing about what was saved."""
    tg = bot_env.tg
    srv = await bot_env.start()
    await post_form(srv, name="Ivan", phone="+7 916 123-45-67", message="A kitchen")
    [touch] = srv.rows("SELECT id, contact_id FROM touches")
    card = await bot_env.says(ANNA, "+79161234567")
    tg.fail_next("editMessageText", status=0)
    lead = CardCB(act="lead", t=touch["id"], c=touch["contact_id"], v="hot").pack()
    answer = await bot_env.press(ANNA, card.result["message_id"], lead)
    assert (answer["text"], answer["show_alert"]) == (
        "Telegram не принял обновление этого сообщения, поэтому оно могло устареть."
        " Откройте его заново, чтобы увидеть, что сохранено.",
        True,
    )
